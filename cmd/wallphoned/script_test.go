package main

import (
	"os"
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
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/state")
			env.Setenv("HOME", env.WorkDir+"/home")
			return os.MkdirAll(env.WorkDir+"/home", 0o700)
		},
	})
}
