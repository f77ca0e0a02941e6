package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/spool"
)

// TestVaultDirectory records a call with no vault, then starts the phone with a directory as
// its vault: the spool drains into it under the facility's keys, with the sealed call record
// and the status object beside the recording.
func TestVaultDirectory(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runAgent(t, data, recordedCall)
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(data, "spool"), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	calls, _ := sp.Calls()
	want := map[string][]byte{}
	for _, c := range calls {
		segs, _ := sp.Segments(c)
		for _, e := range segs {
			want[filepath.Base(sp.Path(e))] = must(sp.ReadFile(e))
		}
	}
	sp.Close()
	if len(calls) != 1 || len(want) == 0 {
		t.Fatalf("the recorded call left %d calls, %d segments", len(calls), len(want))
	}

	vault := filepath.Join(dir, "vault")
	// The real clock, so that the uplink (which runs on it) has time to drain before quit.
	out := runAgent(t, data, "wait 3s\nquit\n", "--clock", "real", "--vault", vault)
	if !strings.Contains(out, `"msg":"uplink started"`) {
		t.Fatalf("no uplink:\n%s", out)
	}
	callDir := filepath.Join(vault, "demo-county")
	matches, _ := filepath.Glob(filepath.Join(callDir, "*", "*", calls[0]))
	if len(matches) != 1 {
		t.Fatalf("the call's directory in the vault: %v\n%s", matches, out)
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(matches[0], name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("vault's %s: %v, or it differs from the spooled segment", name, err)
		}
	}
	for _, name := range []string{"manifest.age", "record.age"} {
		b, err := os.ReadFile(filepath.Join(matches[0], name))
		if err != nil {
			t.Errorf("vault lacks %s: %v", name, err)
			continue
		}
		if bytes.Contains(b, []byte("5125550123")) {
			t.Errorf("%s holds the number in the clear", name)
		}
		if _, err := recording.Decrypt(b, demoIdentity(t, data+"-keys", "escrow.key")); err != nil {
			t.Errorf("%s does not open with the facility's key: %v", name, err)
		}
	}
	if st, _ := filepath.Glob(filepath.Join(vault, "status", "demo-county", "*.json")); len(st) != 1 {
		t.Errorf("status objects: %v", st)
	}
	sp, err = spool.Open(spool.Options{Dir: filepath.Join(data, "spool"), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if u := sp.Usage(); u != (spool.Usage{}) {
		t.Errorf("spool after the drain: %+v", u)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
