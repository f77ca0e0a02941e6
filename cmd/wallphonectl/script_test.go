package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/wallphone/wallphone/store"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"wallphonectl": main})
}

func TestScripts(t *testing.T) {
	// The real agent, for the scripts that record a call and ship it (vault_dir.txtar).
	bin := t.TempDir()
	if !testing.Short() {
		if out, err := exec.Command("go", "build", "-o", bin, "../wallphoned").CombinedOutput(); err != nil {
			t.Fatalf("go build wallphoned: %v\n%s", err, out)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(filepath.ListSeparator)+env.Getenv("PATH"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// putcall DBFILE ID JSON stores a call record as the agent would.
			"putcall": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 {
					ts.Fatalf("usage: putcall DBFILE ID JSON")
				}
				db, err := store.Open(ts.MkAbs(args[0]))
				ts.Check(err)
				defer db.Close()
				ts.Check(db.PutCall(args[1], []byte(args[2])))
			},
			// Sealed recordings and checks on files: recordings_test.go.
			"mkcall": mkcall,
			"size":   size,
			"perm":   perm,
			"flip":   flip,
			// The agent's output and the vault: vault_test.go.
			"capture":   capture,
			"waitfile":  waitfile,
			"signpurge": signpurge,
			"ship":      ship,
		},
	})
}
