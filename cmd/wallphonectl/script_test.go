package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/wallphone/wallphone/store"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"wallphonectl": main})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
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
		},
	})
}
