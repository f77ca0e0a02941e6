package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run the real agent: the test binary re-executes itself as
// wallphoned, with the same main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"wallphoned": main})
}

// TestScripts runs every script in testdata/script: whole calls on the simulated phone, bad
// input, damaged files.
// The scripts make their demo facility with the real wallphonectl, as make run does.
func TestScripts(t *testing.T) {
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "../wallphonectl").CombinedOutput(); err != nil {
		t.Fatalf("go build wallphonectl: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(filepath.ListSeparator)+env.Getenv("PATH"))
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/state")
			env.Setenv("HOME", env.WorkDir+"/home")
			return os.MkdirAll(env.WorkDir+"/home", 0o700)
		},
	})
}
