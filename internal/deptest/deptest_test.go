package deptest

import (
	"slices"
	"testing"
)

// The matcher itself: a guard that matches nothing would pass whatever is linked.
func TestViolations(t *testing.T) {
	rules := []Rule{
		{Path: "github.com/wallphone/wallphone/backoffice/", Why: "back office"},
		{Path: "github.com/creack/pty", Why: "test helper"},
		{Path: "github.com/wallphone/wallphone/", Suffix: "test", Except: []string{"github.com/wallphone/wallphone/selftest"}, Why: "test helper"},
	}
	for _, tc := range []struct {
		dep  string
		want bool
	}{
		{"github.com/wallphone/wallphone/backoffice/tufrepo", true},
		{"github.com/wallphone/wallphone/backoffice", false}, // the prefix is the directory's contents
		{"github.com/creack/pty", true},
		{"github.com/creack/pty/extra", false},
		{"github.com/wallphone/wallphone/uplink/s3test", true},
		{"github.com/wallphone/wallphone/provisioning/ptytest", true},
		{"testing", false}, // "test" alone is not a helper's name; the standard library's own is ruled separately
		{"github.com/wallphone/wallphone/selftest", false},
		{"github.com/wallphone/wallphone/device/keypad/keypadtest", true},
		{"internal/synctest", false}, // the runtime's own, outside the module
		{"github.com/wallphone/wallphone/uplink", false},
	} {
		got := len(Violations([]string{tc.dep}, rules)) == 1
		if got != tc.want {
			t.Errorf("%s: violation %v, want %v", tc.dep, got, tc.want)
		}
	}
}

// Deps asks the go command for real, on a platform other than this one.
func TestDeps(t *testing.T) {
	deps := Deps(t, ARMv7, "github.com/wallphone/wallphone/internal/deptest")
	for _, want := range []string{"github.com/wallphone/wallphone/internal/deptest", "testing", "os/exec"} {
		if !slices.Contains(deps, want) {
			t.Errorf("deps of deptest lack %s: %v", want, deps)
		}
	}
}
