package deptest_test

import (
	"runtime"
	"testing"

	"github.com/wallphone/wallphone/internal/deptest"
)

// Packages depend downwards (DESIGN.md): the call machine reaches the state database only
// through the small interfaces it defines, and the packages below it do not reach up to it.
// These guards fail when such an edge comes back, saying what to do instead.

// host is this machine: which packages a package links does not depend on the board.
var host = deptest.Target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}

const module = "github.com/wallphone/wallphone/"

func TestCallDoesNotLinkTheDatabase(t *testing.T) {
	const why = "call names what it stores through its own Store interface; a type it shares with store lives below both (pin.Lockout), and the agent hands it the database"
	deptest.Forbid(t, host, module+"call", []deptest.Rule{
		{Path: "go.etcd.io/bbolt", Why: why},
		{Path: "go.etcd.io/bbolt/", Why: why},
		{Path: module + "store", Why: why},
	})
}

func TestBelowCallDoNotImportCall(t *testing.T) {
	rules := []deptest.Rule{{
		Path: module + "call",
		Why:  "define the small interface or type this package needs here, or move the shared type below both (registry.Freshness, callrecord, recording.CallInfo); the agent adapts between them",
	}}
	for _, pkg := range []string{"updates", "purge", "recording", "recording/recipients", "callrecord"} {
		t.Run(pkg, func(t *testing.T) {
			deptest.Forbid(t, host, module+pkg, rules)
		})
	}
}
