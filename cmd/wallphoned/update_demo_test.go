package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpdateDemo runs make run-update's script, which a person reads to see an update end to
// end: each step it narrates must have happened.
func TestUpdateDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent three times")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("the demo is a bash script")
	}
	dir := filepath.Join(t.TempDir(), "update")
	cmd := exec.Command("bash", "scripts/update-demo.sh")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "DIR="+dir, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	// In order: version 1 boots; version 2 is installed as a delta, booted on trial and
	// committed, and its binary says it is version 2; version 3 is tried three times, then the
	// bootloader falls back to version 2, which does not install version 3 again.
	for _, want := range []string{
		"agent started  firmware=1",
		"published firmware version 2",
		"new firmware installed and verified: the phone reboots into it when idle  version=2  slot=b",
		"booting  slot=b  trial=true  count=1",
		"agent started  firmware=2",
		"new firmware healthy and committed  version=2  slot=b",
		"\nwallphoned 2\n",
		"published firmware version 3",
		"booting  slot=a  trial=true  count=1",
		"booting  slot=a  trial=true  count=3",
		"fell_back_from=a",
		"new firmware did not commit and the phone fell back",
		"no firmware to install  committed=2  not_retried=firmware/sim_3.img",
	} {
		i := strings.Index(s, want)
		if i < 0 {
			t.Fatalf("the demo did not show %q:\n%s", want, out)
		}
		s = s[i+len(want):]
	}
}
