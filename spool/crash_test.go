package spool

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The kill -9 test: TestCrash runs its own test binary as a child that commits in a loop and
// says so on stdout after each commit returns, kills it with SIGKILL at a random moment,
// reopens the spool and checks that it holds exactly what the child said it committed, plus
// at most the one change the child was in the middle of, whole.
const (
	envCrashDir    = "SPOOL_CRASH_CHILD"  // the spool directory; set only in the child
	envCrashCall   = "SPOOL_CRASH_CALL"   // the call the child records
	envCrashDelete = "SPOOL_CRASH_DELETE" // a call the child deletes first, if any
	envCrashSeed   = "SPOOL_CRASH_SEED"   // set to repeat the kill moments of an earlier run
)

// crashOp is one change the child makes; the parent knows the child's sequence of them.
type crashOp struct {
	kind string // "delete", "segment", "manifest" or "purge"
	call string
	n    int // the segment number, or the version of the manifest or purge request
}

func (o crashOp) String() string { return fmt.Sprintf("%s %s %d", o.kind, o.call, o.n) }

// crashOps is the child's sequence: delete an older call (if del is set), then for every
// segment k of call: the segment, the manifest listing it (rewritten after every segment, as
// package recording does), and after every fifth segment a purge request.
func crashOps(call, del string) []crashOp {
	var ops []crashOp
	if del != "" {
		ops = append(ops, crashOp{"delete", del, 0})
	}
	for k := range 400 {
		ops = append(ops, crashOp{"segment", call, k}, crashOp{"manifest", call, k})
		if k%5 == 4 {
			ops = append(ops, crashOp{"purge", call, k})
		}
	}
	return ops
}

// crashData is what an op writes: segments of 2 KB to 100 KB, manifests whose sizes repeat
// every third version (so that only the hash tells two versions apart), purge requests of
// nearly constant size.
func crashData(o crashOp) []byte {
	tag := o.String()
	switch o.kind {
	case "segment":
		h := sha256.Sum256([]byte(tag))
		return sealedData(tag, 2048+int(binary.BigEndian.Uint32(h[:])%(98*1024)))
	case "manifest":
		return sealedData(tag, 200+64*(o.n%3))
	default:
		return []byte(fmt.Sprintf(`{"purge":%q,"version":%04d}`, o.call, o.n))
	}
}

// want is what one file must hold.
type want struct {
	size int64
	sum  [32]byte
}

// apply returns the spool's contents after op.
func apply(m map[string]want, o crashOp) map[string]want {
	next := make(map[string]want, len(m)+1)
	for k, v := range m {
		next[k] = v
	}
	var n name
	switch o.kind {
	case "delete":
		for k := range next {
			if strings.HasPrefix(k, segmentsDir+"/"+o.call+"/") || k == man(o.call).rel() {
				delete(next, k)
			}
		}
		return next
	case "segment":
		n = seg(o.call, o.n)
	case "manifest":
		n = man(o.call)
	default:
		n = purge(o.call)
	}
	d := crashData(o)
	next[n.rel()] = want{int64(len(d)), sha256.Sum256(d)}
	return next
}

// TestCrashChild is the child of TestCrash; run by itself it does nothing.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("the child of TestCrash")
	}
	s, err := Open(Options{Dir: dir, MaxBytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	say := func(line string) {
		// One write per line, straight to the pipe: once it is there, the parent reads it
		// even after the kill.
		if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	say("open")
	for _, o := range crashOps(os.Getenv(envCrashCall), os.Getenv(envCrashDelete)) {
		switch o.kind {
		case "delete":
			_, err = s.DeleteCall(o.call)
		case "segment":
			_, err = s.CommitSegment(o.call, o.n, crashData(o))
		case "manifest":
			_, err = s.CommitManifest(o.call, crashData(o))
		case "purge":
			err = s.CommitPurge(o.call, crashData(o))
		}
		if err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		say(o.String())
	}
	t.Fatal("the child ran out of work before it was killed")
}

func TestCrash(t *testing.T) {
	if os.Getenv(envCrashDir) != "" {
		t.Skip("in the child")
	}
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envCrashSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s: %v", envCrashSeed, err)
		}
	}
	t.Logf("%s=%d", envCrashSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	model := map[string]want{} // what the spool holds after the last verified reopen
	var calls []string
	var stats struct{ inFlightDone, inFlightUndone, beforeOpen, temps, ops int }
	for i := range iterations {
		call := fmt.Sprintf("20260101T%02d%02d00Z-%012d", 9+i/60, i%60, i)
		calls = append(calls, call)
		del := ""
		if i >= 2 {
			del = calls[i-2]
		}
		ops := crashOps(call, del)

		// Half the runs are killed right after the child reports its nth change, while it
		// is already in the next; the other half at a random moment from the start, which
		// may fall in start-up, in Open, or anywhere in a commit.
		killAfter, killIn := 0, time.Duration(0)
		if i%2 == 0 {
			killAfter = 1 + rng.IntN(40)
		} else {
			killIn = time.Duration(rng.Int64N(int64(250 * time.Millisecond)))
		}
		lines, stderr := runChild(t, dir, call, del, killAfter, killIn)

		// What the child reported: "open", then one line per change, in order.
		done := -1 // changes reported; -1: not even opened
		for j, l := range lines {
			switch {
			case j == 0 && l == "open":
				done = 0
			case j > 0 && j-1 < len(ops) && l == ops[j-1].String():
				done = j
			default:
				t.Fatalf("run %d: line %d from the child is %q; stderr:\n%s", i, j+1, l, stderr)
			}
		}
		if done == len(ops) {
			t.Fatalf("run %d: the child finished before it was killed", i)
		}

		// Before Open: at most the one temporary file of the commit the kill cut short.
		if temps := countTemps(t, dir); temps > 1 {
			t.Fatalf("run %d: %d temporary files after the kill", i, temps)
		} else {
			stats.temps += temps
		}

		// The spool must hold every change reported, and the one in flight either whole or
		// not at all.
		before := model
		if done >= 0 {
			for _, o := range ops[:done] {
				before = apply(before, o)
			}
			stats.ops += done
		} else {
			stats.beforeOpen++
		}
		after := before
		if done >= 0 {
			after = apply(before, ops[done])
		}
		s, lb := openSpool(t, dir)
		got := stateOf(t, s) // reads every file through ReadFile: hash-checked against the index
		switch {
		case sameContents(got, before):
			model = before
			if done >= 0 && !sameContents(got, after) {
				stats.inFlightUndone++
			}
		case sameContents(got, after):
			model = after
			stats.inFlightDone++
		default:
			t.Fatalf("run %d (killed after %d changes; in flight: %v): the spool holds\n%s\nwant\n%s\nor\n%s\nlog:\n%s",
				i, done, ops[done], describe(got.files), describeWant(before), describeWant(after), lb)
		}
		if errs := lb.lines("ERROR"); len(errs) > 0 {
			t.Fatalf("run %d: a crash was taken for damage:\n%s", i, strings.Join(errs, ""))
		}
		// The files on disk are exactly the indexed ones: no temporary file, nothing extra.
		var onDisk []string
		for _, f := range files(t, dir) {
			if !strings.HasSuffix(f, "/") && f != indexName {
				onDisk = append(onDisk, f)
			}
		}
		if wantFiles := sortedKeys(model); !slices.Equal(onDisk, wantFiles) {
			t.Fatalf("run %d: files on disk\n%v\nwant\n%v", i, onDisk, wantFiles)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kill -9 runs, %d changes reported and found; the change in flight had taken effect in %d runs and not in %d; %d runs killed before Open returned; %d temporary files cleaned up",
		iterations, stats.ops, stats.inFlightDone, stats.inFlightUndone, stats.beforeOpen, stats.temps)
}

// runChild runs TestCrashChild on dir and kills it with SIGKILL when it has reported
// killAfter lines, or killIn after it starts. It returns every line the child wrote.
func runChild(t *testing.T, dir, call, del string, killAfter int, killIn time.Duration) ([]string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashCall+"="+call, envCrashDelete+"="+del)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var timer <-chan time.Time
	if killAfter == 0 {
		timer = time.After(killIn)
	}

	lineCh := make(chan string)
	var reader sync.WaitGroup
	reader.Go(func() {
		defer close(lineCh)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lineCh <- sc.Text()
		}
	})
	// Read to the end: lines already in the pipe when the kill lands were written after
	// their commits returned, so they count.
	var lines []string
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Error(err)
			}
		}
	}
	for open := true; open; {
		select {
		case l, ok := <-lineCh:
			if !ok {
				open = false
				continue
			}
			lines = append(lines, l)
			if len(lines) == killAfter {
				kill()
			}
		case <-timer:
			kill()
		}
	}
	reader.Wait()
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL but ended with %v; stderr:\n%s", err, &stderr)
	}
	return lines, stderr.String()
}

func countTemps(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if isTemp(d.Name()) {
			n++
		}
		return nil
	})
	return n
}

// sameContents reports whether a spool's state is exactly m, Usage included.
func sameContents(st spoolState, m map[string]want) bool {
	u := Usage{}
	calls := make(map[string]bool)
	for k, w := range m {
		if st.files[k] != w.sum {
			return false
		}
		n, _ := parseRel(k)
		u.Bytes += w.size
		switch n.kind {
		case kindSegment:
			u.Segments++
			calls[n.call] = true
		case kindManifest:
			u.Manifests++
			calls[n.call] = true
		case kindPurge:
			u.Purges++
		}
	}
	u.Calls = len(calls)
	return len(st.files) == len(m) && st.usage == u
}

func describe(m map[string][32]byte) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		sum := m[k]
		fmt.Fprintf(&b, "  %s %x\n", k, sum[:4])
	}
	return b.String()
}

func describeWant(m map[string]want) string {
	sums := make(map[string][32]byte, len(m))
	for k, w := range m {
		sums[k] = w.sum
	}
	return describe(sums)
}
