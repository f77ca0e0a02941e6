package uplink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
	"github.com/wallphone/wallphone/uplink"
	"github.com/wallphone/wallphone/uplink/s3test"
)

// TestPhoneCannotReadListOrDelete checks the bucket policy the README gives: the phone's
// credentials write, and get AccessDenied for everything else.
func TestPhoneCannotReadListOrDelete(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	ctx := context.Background()
	phone := srv.Phone(t)
	if _, err := phone.PutObject(ctx, s3test.Bucket, "a/b.age", strings.NewReader("age-encryption.org/v1\n"), 22, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("the phone cannot write: %v", err)
	}
	denied := func(what string, err error) {
		t.Helper()
		if minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Errorf("%s with the phone's credentials: %v, want AccessDenied", what, err)
		}
	}
	_, err := phone.StatObject(ctx, s3test.Bucket, "a/b.age", minio.StatObjectOptions{})
	denied("stat", err)
	obj, err := phone.GetObject(ctx, s3test.Bucket, "a/b.age", minio.GetObjectOptions{})
	if err == nil {
		_, err = obj.Read(make([]byte, 10))
	}
	denied("get", err)
	for o := range phone.ListObjects(ctx, s3test.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		err = o.Err
		break
	}
	denied("list", err)
	denied("remove", phone.RemoveObject(ctx, s3test.Bucket, "a/b.age", minio.RemoveObjectOptions{}))
	if got := srv.Objects(t); len(got) != 1 {
		t.Errorf("the bucket holds %d objects after the phone's attempts, want the 1 it wrote", len(got))
	}
}

type rig struct {
	srv   *s3test.Server
	proxy *s3test.Proxy
	sp    *spool.Spool
	k     keys
	log   *logBuf
	opts  uplink.Options
	state *uplink.State
	dir   string // holds spool/ and uplink.db
}

// newRig is a spool with two recorded calls (1 s segments), a server with a fault proxy in
// front, and the uplink's options.
func newRig(t *testing.T, partSize int64) *rig {
	t.Helper()
	r := &rig{srv: s3test.Start(t), k: newKeys(t), log: &logBuf{}}
	r.proxy = s3test.NewProxy(t, r.srv.Endpoint())
	dir := t.TempDir()
	r.dir = dir
	r.sp = openSpool(t, filepath.Join(dir, "spool"))
	record(t, r.sp, r.k, callID(1), 3500*time.Millisecond, time.Second)
	record(t, r.sp, r.k, callID(2), 2*time.Second, time.Second)
	var err error
	r.state, err = uplink.OpenState(filepath.Join(dir, "uplink.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.state.Close() })
	cfg := s3test.PhoneConfig(r.proxy.URL)
	cfg.PartSizeBytes = partSize
	v, err := uplink.NewS3(cfg, r.state, nil, r.log.logger())
	if err != nil {
		t.Fatal(err)
	}
	r.opts = uplink.Options{Vault: v, Spool: r.sp, Facility: facility, DeviceID: device,
		RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, Timeout: time.Second, Batch: 4,
		Logger: r.log.logger()}
	return r
}

func (r *rig) drain(t *testing.T) {
	t.Helper()
	u, err := uplink.New(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := u.Drain(ctx); err != nil {
		t.Fatalf("drain: %v\nlog:\n%s", err, r.log)
	}
}

// TestDrain ships two real recordings, a purge request and the call records, and checks the
// vault object by object.
func TestDrain(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	if err := r.sp.CommitPurge(callID(0), []byte(`{"signed":"purge request"}`)); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	record := []byte(`{"call_id":"` + callID(1) + `","number":"+15125550100","recorded":true}`)
	if err := db.PutCall(callID(1), record); err != nil {
		t.Fatal(err)
	}
	// A record whose id could name no object is left out, not retried forever.
	if err := db.PutCall("../bad id", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	r.opts.Calls, r.opts.Recipients, r.opts.State = db, r.k.rcps, r.state
	w := want(t, r.sp)
	if len(w) != 4+1+2+1+1 {
		t.Fatalf("the recordings made %d files, want 9", len(w))
	}
	r.drain(t)
	got := r.srv.Objects(t)
	recKey := uplink.RecordKey(facility, device, callID(1))
	checkVault(t, got, w, recKey)
	checkEmpty(t, r.sp)

	sealed := got[recKey]
	if bytes.Contains(sealed, []byte("5550100")) {
		t.Error("the call record went up with its number in the clear")
	}
	for _, id := range r.k.ids {
		if !bytes.Equal(decrypt(t, sealed, id), record) {
			t.Error("the sealed record does not open to the record")
		}
	}
	var st uplink.Status
	if err := json.Unmarshal(got[uplink.StatusKey(facility, device)], &st); err != nil {
		t.Fatal(err)
	}
	if st.Format != uplink.StatusFormat || st.SpoolSegments != 0 || st.Uploaded < int64(len(w)) || st.DeviceID != device {
		t.Errorf("status: %+v", st)
	}

	// Shipped records are not shipped again; a rewritten one is, to the same key.
	puts := r.proxy.Count("PUT")
	r.drain(t)
	if n := r.proxy.Count("PUT") - puts; n != 1 {
		t.Errorf("a second drain made %d uploads, want 1 (the status)", n)
	}
	if err := db.PutCall(callID(1), []byte(`{"call_id":"`+callID(1)+`","destroyed":true}`)); err != nil {
		t.Fatal(err)
	}
	r.drain(t)
	got = r.srv.Objects(t)
	if b := decrypt(t, got[recKey], r.k.ids[0]); !bytes.Contains(b, []byte("destroyed")) {
		t.Errorf("the rewritten record did not replace the shipped one: %s", b)
	}
	checkVault(t, got, w, recKey)
}

// TestServerFaults drains through every fault the proxy makes: 500s, a stall, a full disk
// (507), and bodies corrupted on the way, which the store must refuse by checksum.
func TestServerFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault s3test.Fault
		n     int
	}{
		{"500", s3test.Fail500, 5},
		{"stall", s3test.Stall, 2},
		{"507 disk full", s3test.Full507, 5},
		{"corrupted body", s3test.Corrupt, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, 0)
			w := want(t, r.sp)
			retries := 0
			uplink.SetOnRetry(&r.opts, func(error) { retries++ })
			r.proxy.Set(tc.fault, tc.n)
			r.drain(t)
			if retries == 0 {
				t.Error("no failure was seen: the fault was not injected")
			}
			checkVault(t, r.srv.Objects(t), w)
			checkEmpty(t, r.sp)
		})
	}
}

// TestServerKilled kills the server (SIGKILL) before the drain starts, and again after the
// third confirmed upload, and starts it again after the uplink has failed a few times.
func TestServerKilled(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	w := want(t, r.sp)
	r.srv.Kill()
	var mu sync.Mutex
	fails, puts := 0, 0
	uplink.SetOnRetry(&r.opts, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if fails++; fails == 3 || fails == 6 {
			r.srv.Restart(t)
		}
	})
	uplink.SetAfterPut(&r.opts, func(string) {
		mu.Lock()
		defer mu.Unlock()
		if puts++; puts == 3 {
			r.srv.Kill()
		}
	})
	r.drain(t)
	if fails < 6 {
		t.Errorf("%d failures, want at least 6 (two outages of three tries)", fails)
	}
	checkVault(t, r.srv.Objects(t), w)
	checkEmpty(t, r.sp)
}

// TestMultipartResumes uploads a 12 MiB segment in 5 MiB parts and kills the server once the
// second part is stored: after the restart the upload resumes with the third part, and
// the object is whole.
func TestMultipartResumes(t *testing.T) {
	t.Parallel()
	r := newRig(t, uplink.MinPartSize)
	big := sealedBlob(t, r.k, 12<<20)
	id := callID(0)
	if _, err := r.sp.CommitSegment(id, 0, big); err != nil {
		t.Fatal(err)
	}
	w := want(t, r.sp)
	killed := make(chan struct{})
	r.proxy.OnResponse(func(req *http.Request, status int) {
		if n, ok := s3test.IsPart(req); ok && n == 2 && status == http.StatusOK {
			select {
			case <-killed:
			default:
				close(killed)
				r.srv.Kill()
			}
		}
	})
	restarted := false
	uplink.SetOnRetry(&r.opts, func(error) {
		if !restarted {
			restarted = true
			r.srv.Restart(t)
		}
	})
	r.opts.Batch = 64
	r.drain(t)
	if !restarted {
		t.Fatal("the server was never killed mid upload")
	}
	if n := r.proxy.Count("PUT part"); n != 3 {
		t.Errorf("%d parts uploaded, want 3: the upload started again instead of resuming", n)
	}
	if !strings.Contains(r.log.String(), "uplink_multipart_resume") {
		t.Errorf("no resume logged:\n%s", r.log)
	}
	checkVault(t, r.srv.Objects(t), w)
	checkEmpty(t, r.sp)
}

// sealedBlob is an age file of about n bytes.
func sealedBlob(t testing.TB, k keys, n int) []byte {
	var b bytes.Buffer
	wr := must(ageEncrypt(&b, k))
	chunk := bytes.Repeat([]byte("wallphone"), 1<<12)
	for b.Len() < n {
		wr.Write(chunk)
	}
	wr.Close()
	return b.Bytes()
}

// TestFullDisk gives the server a real 3 MiB disk (a tmpfs; mounting needs root), fills it,
// and makes it larger while the uplink retries.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s; TestServerFaults/507 covers a full disk by injection", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	srv := s3test.StartIn(t, mnt)
	k := newKeys(t)
	dir := t.TempDir()
	sp := openSpool(t, filepath.Join(dir, "spool"))
	for i := range 60 { // 60 × 80 KB: more than 3 MiB
		if _, err := sp.CommitSegment(callID(7), i, sealedBlob(t, k, 80<<10)); err != nil {
			t.Fatal(err)
		}
	}
	w := want(t, sp)
	state := must(uplink.OpenState(filepath.Join(dir, "uplink.db")))
	defer state.Close()
	log := &logBuf{}
	v := must(uplink.NewS3(s3test.PhoneConfig(srv.Endpoint()), state, nil, log.logger()))
	o := uplink.Options{Vault: v, Spool: sp, Facility: facility, DeviceID: device,
		RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, Timeout: 5 * time.Second, Logger: log.logger()}
	fails := 0
	var full error
	uplink.SetOnRetry(&o, func(err error) {
		if fails++; fails == 3 {
			full = err
			if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
				t.Errorf("grow the tmpfs: %v %s", err, out)
			}
		}
	})
	u := must(uplink.New(o))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := u.Drain(ctx); err != nil {
		t.Fatalf("drain: %v\n%s", err, log)
	}
	if full == nil {
		t.Fatal("the disk never filled")
	}
	t.Logf("the store's answer on a full disk: %v", full)
	checkVault(t, srv.Objects(t), w)
	checkEmpty(t, sp)
}

// The kill -9 test of the phone: the child drains, and kills itself with SIGKILL after the
// store confirmed an upload and before the spool removed the file. The parent drains
// what is left: the vault holds every file once.
const envChild = "UPLINK_CRASH_CHILD"

func TestCrashBetweenUploadAndDelete(t *testing.T) {
	if os.Getenv(envChild) != "" {
		crashChild(t)
		return
	}
	if testing.Short() {
		t.Skip("starts copies of its own test binary, which qemu-user (make test-arm, -short) cannot")
	}
	r := newRig(t, 0)
	w := want(t, r.sp)
	spoolDir := filepath.Join(r.dir, "spool")
	r.sp.Close()
	r.state.Close()
	for _, kill := range []string{"3", "5"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashBetweenUploadAndDelete$", "-test.v")
		cmd.Env = append(os.Environ(), envChild+"="+r.dir, "UPLINK_CRASH_AT="+kill,
			"UPLINK_CRASH_ENDPOINT="+r.srv.Endpoint())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
		}
	}
	sp := openSpool(t, spoolDir)
	if sp.Usage().Segments == 0 {
		t.Fatal("the children drained everything: no crash left work")
	}
	state := must(uplink.OpenState(filepath.Join(r.dir, "uplink.db")))
	defer state.Close()
	r.sp, r.opts.Spool = sp, sp
	r.opts.Vault = must(uplink.NewS3(s3test.PhoneConfig(r.proxy.URL), state, nil, nil))
	before := r.proxy.Count("PUT")
	r.drain(t)
	if r.proxy.Count("PUT") == before {
		t.Error("nothing went through the proxy")
	}
	checkVault(t, r.srv.Objects(t), w)
	checkEmpty(t, sp)
}

func crashChild(t *testing.T) {
	dir := os.Getenv(envChild)
	sp := openSpool(t, filepath.Join(dir, "spool"))
	state := must(uplink.OpenState(filepath.Join(dir, "uplink.db")))
	cfg := s3test.PhoneConfig(os.Getenv("UPLINK_CRASH_ENDPOINT"))
	v := must(uplink.NewS3(cfg, state, nil, nil))
	o := uplink.Options{Vault: v, Spool: sp, Facility: facility, DeviceID: device, RetryBase: time.Millisecond}
	at := os.Getenv("UPLINK_CRASH_AT")
	puts := 0
	uplink.SetAfterPut(&o, func(key string) {
		puts++
		if want := int(at[0] - '0'); puts == want {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	})
	u := must(uplink.New(o))
	u.Drain(context.Background())
	t.Fatal("the child drained everything without being killed")
}

// TestCorruptFileKept changes a spooled segment on flash after its commit (same size): it is
// not uploaded, stays on the phone, and the rest drains around it.
func TestCorruptFileKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp := openSpool(t, filepath.Join(dir, "spool"))
	k := newKeys(t)
	record(t, sp, k, callID(1), 2500*time.Millisecond, time.Second)
	w := want(t, sp)
	bad := must(sp.Segments(callID(1)))[1]
	b := must(os.ReadFile(sp.Path(bad)))
	b[len(b)-1] ^= 1
	if err := os.WriteFile(sp.Path(bad), b, 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := uplink.SegmentKey(facility, device, bad.CallID, bad.Seq)
	delete(w, badKey)
	vault := t.TempDir()
	log := &logBuf{}
	u := must(uplink.New(uplink.Options{Vault: uplink.NewDir(vault, 0), Spool: sp, Facility: facility, DeviceID: device, Logger: log.logger()}))
	if err := u.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := range w {
		if _, err := os.Stat(filepath.Join(vault, k)); err != nil {
			t.Errorf("vault lacks %s: %v", k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(vault, badKey)); err == nil {
		t.Error("the altered segment was uploaded")
	}
	if _, err := sp.ReadFile(bad); !errors.Is(err, spool.ErrCorrupt) {
		t.Errorf("the altered segment is no longer in the spool as it was: %v", err)
	}
	if u := sp.Usage(); u.Segments != 1 || u.Manifests != 0 {
		t.Errorf("spool after the drain: %+v, want the altered segment alone", u)
	}
	if !strings.Contains(log.String(), "uplink_corrupt") {
		t.Errorf("not logged:\n%s", log)
	}
}
