package main

import (
	"slices"
	"testing"

	"github.com/wallphone/wallphone/internal/deptest"
)

// phoneForbids is what the phone binary must never link, whatever a change imports: the
// back office (signing keys, the repository's publishing, the vault's administration: the
// phone signs nothing and cannot delete from the vault), and anything made for tests.
var phoneForbids = []deptest.Rule{
	{Path: "github.com/wallphone/wallphone/backoffice/", Why: "the back office's, never on a phone (publishing and signing the repository, the vault's administration, the demo facility)"},
	{Path: "github.com/creack/pty", Why: "pseudo-terminals are for the console's tests"},
	{Path: "github.com/rogpeppe/go-internal/", Why: "script tests only"},
	{Path: "github.com/wallphone/wallphone/", Suffix: "test", Except: []string{"github.com/wallphone/wallphone/selftest"}, Why: "a test helper package"},
	{Path: "testing", Why: "the standard library's test support: a test helper is linked"},
}

// TestPhoneDeps guards what the phone binary links, on the phones' platforms, with and
// without the PortAudio handset: go list sees every file the build would use there.
func TestPhoneDeps(t *testing.T) {
	const self = "github.com/wallphone/wallphone/cmd/wallphoned"
	for _, target := range deptest.Platforms {
		t.Run(target.String(), func(t *testing.T) {
			deps := deptest.Deps(t, target, self)
			// A go list that saw nothing would pass every rule.
			for _, want := range []string{self, "github.com/wallphone/wallphone/agent", "github.com/wallphone/wallphone/call"} {
				if !slices.Contains(deps, want) {
					t.Fatalf("deps of wallphoned lack %s: the guard is not looking at the agent", want)
				}
			}
			if target.CGO && !slices.Contains(deps, "github.com/gordonklaus/portaudio") {
				t.Fatalf("the portaudio build does not link PortAudio: the guard is not looking at the real handset")
			}
			for _, v := range deptest.Violations(deps, phoneForbids) {
				t.Errorf("wallphoned links %s", v)
			}
		})
	}
}
