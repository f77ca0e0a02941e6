package main

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
)

// TestKill9DuringRecordedCalls kills the real agent with SIGKILL at random moments of
// recorded calls, again and again on the same data directory, and after every kill checks
// that every finished segment is there, indexed, intact and decryptable, that each manifest
// matches its segments, and that nothing half-written is visible.
func TestKill9DuringRecordedCalls(t *testing.T) {
	kills := 50
	if testing.Short() {
		kills = 10
	}
	bin := buildAgent(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runAgent(t, data, "quit\n")
	// One-second segments, so that each call makes many: a new policy from the repository.
	if err := demo.PublishPolicy(data+"-keys", 2, `"segment": "5s"`, `"segment": "1s"`); err != nil {
		t.Fatal(err)
	}
	if out := runAgent(t, data, "quit\n"); !strings.Contains(out, `"policy_version":2`) {
		t.Fatalf("policy 2 not installed:\n%s", out)
	}
	id := demoIdentity(t, data+"-keys", "investigations.key")

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	script := "offhook\npress 1\npress 1001#\npress 1234#\npress 5125550123#\nwait 8s\ncallee answer\nwait 15s\ncallee accept\n" +
		strings.Repeat("wait 500ms\n", 240) + "onhook\nquit\n"
	midCall, segments := 0, 0
	for i := range kills {
		cmd := exec.Command(bin, "--board", "sim", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { io.WriteString(stdin, script); stdin.Close() }()
		sc := bufio.NewScanner(stdout)
		connected := false
		for !connected && sc.Scan() {
			connected = strings.Contains(sc.Text(), `"msg":"connected"`)
		}
		if !connected {
			cmd.Wait()
			t.Fatalf("kill %d: the call never connected; stderr:\n%s", i, stderr.String())
		}
		// Any number of further events, then the kill lands wherever the agent is.
		for n := rng.IntN(60); n > 0 && sc.Scan(); n-- {
		}
		cmd.Process.Kill()
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) && !exit.Exited() {
			midCall++
		}
		go io.Copy(io.Discard, stdout)
		segments = checkSpool(t, data, id)
	}
	if midCall < kills/2 {
		t.Errorf("only %d of %d kills landed before the agent finished", midCall, kills)
	}
	if segments < kills {
		t.Errorf("%d segments after %d recorded calls", segments, kills)
	}
	// The state database survived every kill.
	db, err := store.Open(filepath.Join(data, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	t.Logf("%d kills, %d mid-call, %d segments checked", kills, midCall, segments)
}

// checkSpool opens the spool as the agent does (repairing what a crash left) and checks it
// whole. It returns the number of segments.
func checkSpool(t *testing.T, data string, id age.Identity) int {
	t.Helper()
	dir := filepath.Join(data, "spool")
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	calls, err := sp.Calls()
	if err != nil {
		t.Fatal(err)
	}
	indexed := map[string]bool{}
	total := 0
	for _, c := range calls {
		segs, err := sp.Segments(c)
		if err != nil {
			t.Fatal(err)
		}
		hashes := map[int]string{}
		for i, e := range segs {
			if e.Seq != i {
				t.Fatalf("call %s: segment %d where %d belongs: a gap", c, e.Seq, i)
			}
			b, err := sp.ReadFile(e)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := recording.Decrypt(b, id)
			if err != nil {
				t.Fatalf("call %s segment %d: %v", c, e.Seq, err)
			}
			meta, _, err := recording.ParseSegment(plain)
			if err != nil || meta.CallID != c || meta.Seq != e.Seq {
				t.Fatalf("call %s segment %d: %+v %v", c, e.Seq, meta, err)
			}
			hashes[e.Seq] = hexSum(b)
			indexed[sp.Path(e)] = true
			total++
		}
		me, ok, err := sp.Manifest(c)
		if err != nil || !ok {
			t.Fatalf("call %s has no manifest: %v", c, err)
		}
		mb, err := sp.ReadFile(me)
		if err != nil {
			t.Fatal(err)
		}
		indexed[sp.Path(me)] = true
		plain, err := recording.Decrypt(mb, id)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := recording.OpenManifest(plain)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Segments {
			if hashes[s.Seq] != s.SHA256 {
				t.Fatalf("call %s: manifest lists segment %d, which is missing or different", c, s.Seq)
			}
		}
		// The manifest is rewritten after each segment: at most the one segment sealed just
		// before a kill can be missing from it, and only if the call did not finish.
		if unlisted := len(segs) - len(m.Segments); unlisted < 0 || unlisted > 1 || (unlisted == 1 && m.Complete) {
			t.Fatalf("call %s: %d segments, manifest lists %d (complete %v)", c, len(segs), len(m.Segments), m.Complete)
		}
	}
	// Every file under segments/ and manifests/ is indexed, and nothing half-written shows.
	for _, sub := range []string{"segments", "manifests"} {
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !indexed[p] {
				t.Errorf("%s is not in the index", p)
			}
			if strings.Contains(filepath.Base(p), ".tmp-") {
				t.Errorf("%s: a temporary file survived Open", p)
			}
			return nil
		})
	}
	return total
}

// TestDestroyCallCutShort: a recorded call cut short by kill -9 (a power cut) is still
// found by destroy on discovery. Its record was kept before the first segment, start-up
// completes it, and when a registry makes the number privileged its segments go and a signed
// purge request is queued, as for a call that ended properly.
func TestDestroyCallCutShort(t *testing.T) {
	bin := buildAgent(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runAgent(t, data, "quit\n")
	cmd := exec.Command(bin, "--board", "sim", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdin = strings.NewReader("offhook\npress 1\npress 1001#\npress 1234#\npress 5125550123#\nwait 8s\ncallee answer\nwait 15s\ncallee accept\n" +
		strings.Repeat("wait 1s\n", 600) + "onhook\nquit\n")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sealed := false
	for !sealed && sc.Scan() {
		sealed = strings.Contains(sc.Text(), `"msg":"segment sealed"`)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !sealed {
		t.Fatal("no segment sealed before the kill")
	}
	callID := attorneyLater(t, data)
	out := runAgent(t, data, "quit\n")
	for _, want := range []string{
		`"event":"call_cut_short","call_id":"` + callID + `"`,
		`"event":"recording_destroyed","call_id":"` + callID + `","kind":"attorney","registry_version":2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the log:\n%s", want, out)
		}
	}
	destroyed(t, data, callID)
}
