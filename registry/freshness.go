package registry

import "time"

// Freshness is how current the registry in force is: stale once the signed metadata that
// vouched for it has expired and nothing newer could be verified. The updater says it and
// the call machine decides with it; it is defined here, with the registry it describes, so
// that neither of them imports the other.
type Freshness struct {
	Stale bool
	// Since is when it went stale.
	Since time.Time
}
