package call

import (
	"time"

	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
)

// Kind is what the phone decided for a dialed number.
type Kind string

// The decisions, in the order they are tried: a number that is free or privileged is never
// recorded, whatever else is true of it.
const (
	// Invalid: the digits are not a phone number under the facility's dial plan.
	Invalid Kind = "invalid"
	// Free: a facility hotline (PREA, abuse); connected unrecorded, and the call record keeps
	// no caller identity.
	Free Kind = "free"
	// Unavailable: the phone has no verified registry, so it cannot know whether the number is
	// privileged; it records nothing and connects nothing but free numbers.
	Unavailable Kind = "unavailable"
	// Privileged: in the registry; connected with no notice and no recording of any kind.
	Privileged Kind = "privileged"
	// Blocked: on the facility's block list, or not on the caller's allowed list.
	Blocked Kind = "blocked"
	// Recorded: everything else; announced to both parties and recorded once the called party
	// accepts.
	Recorded Kind = "recorded"
)

// Reasons, as they appear in the decision event and the call record.
const (
	ReasonNotANumber     = "not_a_number"
	ReasonFacilityFree   = "facility_free_list"
	ReasonNoRegistry     = "no_verified_registry"
	ReasonRegistry       = "registry"
	ReasonFacilityBlock  = "facility_block_list"
	ReasonNotAllowed     = "not_on_allowed_list"
	ReasonDefaultRecords = "default_recorded"
	ReasonStale          = "registry_stale_too_long"
)

// Decision is the verdict on one dialed number, with what it was decided from; it goes into
// the call's record.
type Decision struct {
	Kind   Kind
	Reason string
	// E164 is the normalised number; empty when Kind is Invalid.
	E164 string
	// Privileged is the registry entry for Kind == Privileged.
	Privileged registry.Entry
	// RegistryVersion is 0 when the phone had no registry.
	RegistryVersion uint64
	PolicyVersion   int64
	// Stale: decided from a registry past its expiry; such calls are checked again
	// (destroy on discovery) as soon as a fresh registry arrives.
	Stale bool
}

// ApplyStale marks a decision made from a stale registry and, once the registry has been
// stale longer than the policy allows, refuses a call that would be recorded: a number
// registered meanwhile would be recorded, and the phone cannot know. Privileged calls still
// connect (the old registry is still right about them), as do free ones.
func ApplyStale(d Decision, pol *policy.Policy, f registry.Freshness, now time.Time) Decision {
	if !f.Stale || d.Kind == Invalid || d.Kind == Unavailable {
		return d
	}
	d.Stale = true
	if d.Kind == Recorded && pol.Stale.RefuseRecordedAfter > 0 && now.Sub(f.Since) >= pol.Stale.RefuseRecordedAfter {
		d.Kind, d.Reason = Unavailable, ReasonStale
	}
	return d
}

// Decide applies the facility policy and the registry to the digits a caller dialed. It is
// pure so that every path can be table-tested; reg may be nil.
func Decide(pol *policy.Policy, reg Registry, caller policy.Caller, digits string) (Decision, error) {
	d := Decision{PolicyVersion: pol.Version}
	if reg != nil {
		d.RegistryVersion = reg.Version()
	}
	e164, err := pol.DialPlan.Dialed(digits)
	if err != nil {
		d.Kind, d.Reason = Invalid, ReasonNotANumber
		return d, err
	}
	d.E164 = e164
	switch {
	case pol.IsFree(e164):
		d.Kind, d.Reason = Free, ReasonFacilityFree
	case reg == nil:
		d.Kind, d.Reason = Unavailable, ReasonNoRegistry
	default:
		if e, ok := reg.Lookup(e164); ok {
			d.Kind, d.Reason, d.Privileged = Privileged, ReasonRegistry, e
		} else if pol.IsBlocked(e164) {
			d.Kind, d.Reason = Blocked, ReasonFacilityBlock
		} else if !caller.Allows(e164) {
			d.Kind, d.Reason = Blocked, ReasonNotAllowed
		} else {
			d.Kind, d.Reason = Recorded, ReasonDefaultRecords
		}
	}
	return d, nil
}

// keepsNumber reports whether the call record and the logs may hold the number: never for
// privileged and free calls, whose numbers are the sensitive part.
func (d Decision) keepsNumber() bool {
	return d.Kind == Recorded || d.Kind == Blocked
}
