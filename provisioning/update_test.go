package provisioning_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.bug.st/serial"

	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/provisioning/ptytest"
)

// updaterFunc is an Updater made of a function: what a test's phone does with the
// technician's repository.
type updaterFunc func(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error)

func (f updaterFunc) Update(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error) {
	return f(ctx, repo)
}

// laptopRepo is a technician's repository folder: a metadata file and an image that spans
// many frames and ends inside one.
func laptopRepo() (fstest.MapFS, []byte) {
	img := make([]byte, 5*provisioning.MaxData+1234)
	rand.NewChaCha8([32]byte{7}).Read(img)
	return fstest.MapFS{
		"metadata/timestamp.json":       {Data: []byte(`{"signed":{"version":3}}`)},
		"targets/firmware/ab.sim_2.img": {Data: img},
		"secret.txt":                    {Data: []byte("not part of the repository")},
	}, img
}

// newUpdateRig is a rig whose phone runs update as its Updater; pulled, once closed, makes
// every wait of the phone's for the laptop time out at once.
func newUpdateRig(t *testing.T, update updaterFunc) (r *rig, pulled chan time.Time) {
	t.Helper()
	pulled = make(chan time.Time)
	r = newRig(t)
	r.stop()
	r.updater = update
	r.after = pulledAfter(pulled)
	r.newServer()
	r.connect()
	r.login()
	return r, pulled
}

// pulledAfter is the phone's timer in these tests: its wait for an answer ends once pulled
// is closed; nothing else it waits for (the keep-alive notes) comes.
func pulledAfter(pulled chan time.Time) func(time.Duration) <-chan time.Time {
	return func(d time.Duration) <-chan time.Time {
		if d == provisioning.RepoTimeout {
			return pulled
		}
		return nil
	}
}

// TestUpdateReads: the phone reads whole files and ranges of the technician's repository
// byte for byte, binary data included; a file the repository lacks is fs.ErrNotExist; the
// answer and the audit log say what was installed and by whom; the technician sees the
// phone's notes and the bytes sent.
func TestUpdateReads(t *testing.T) {
	repo, img := laptopRepo()
	type read struct {
		off, n int64
	}
	ranges := []read{{0, int64(len(img))}, {4096, 4096}, {int64(len(img)) - 1, 1}, {3, 2 * provisioning.MaxData}}
	r, _ := newUpdateRig(t, func(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error) {
		ts, err := repo.ReadFile(ctx, "metadata/timestamp.json", 1<<10)
		if err != nil || string(ts) != `{"signed":{"version":3}}` {
			return provisioning.Updated{}, errors.New("timestamp read wrong")
		}
		if _, err := repo.ReadFile(ctx, "metadata/4.root.json", 1<<10); !errors.Is(err, fs.ErrNotExist) {
			return provisioning.Updated{}, errors.New("missing file not reported as missing")
		}
		if _, err := repo.ReadFile(ctx, "targets/firmware/ab.sim_2.img", 100); err == nil {
			return provisioning.Updated{}, errors.New("file over the limit read")
		}
		whole, err := repo.ReadFile(ctx, "targets/firmware/ab.sim_2.img", 1<<20)
		if err != nil || !bytes.Equal(whole, img) {
			return provisioning.Updated{}, errors.New("whole image read wrong")
		}
		for _, rg := range ranges {
			var b bytes.Buffer
			if err := repo.ReadRange(ctx, "targets/firmware/ab.sim_2.img", rg.off, rg.n, int64(len(img)), &b); err != nil {
				return provisioning.Updated{}, err
			}
			if !bytes.Equal(b.Bytes(), img[rg.off:rg.off+rg.n]) {
				return provisioning.Updated{}, errors.New("range read wrong")
			}
			repo.Progress(provisioning.UpdateProgress{Stage: "installing", Done: rg.off + rg.n, Total: int64(len(img))})
		}
		// The signed length is not the laptop's: refused.
		if err := repo.ReadRange(ctx, "targets/firmware/ab.sim_2.img", 0, 10, int64(len(img))+1, io.Discard); !errors.Is(err, provisioning.ErrRepoSize) {
			return provisioning.Updated{}, errors.New("size mismatch not reported")
		}
		return provisioning.Updated{Image: "firmware/sim_2.img", Version: 2, Slot: "b", Next: "reboots into it when idle"}, nil
	})
	var last provisioning.UpdateStatus
	u, err := r.client.Update(context.Background(), repo, func(s provisioning.UpdateStatus) { last = s })
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || u.Slot != "b" || u.Next == "" {
		t.Fatalf("answer %+v", u)
	}
	if last.Stage != "installing" || last.Total != int64(len(img)) || last.Sent < 2*int64(len(img)) {
		t.Fatalf("last status %+v", last)
	}
	if n := r.audit.count(`console_command {"device_id":"wp-0123abcd","fetched":"0","image":"firmware/sim_2.img","request":"update","result":"ok"`); n != 1 {
		t.Fatalf("audit: %d update entries\n%s", n, strings.Join(r.audit.entries, "\n"))
	}
	// The session goes on after the update.
	if _, err := r.client.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateRefusedBeforeSignIn: update is a command like the others.
func TestUpdateRefusedBeforeSignIn(t *testing.T) {
	r := newRig(t)
	repo, _ := laptopRepo()
	_, err := r.client.Update(context.Background(), repo, nil)
	wantCode(t, err, provisioning.CodeNotAuthenticated)
}

// TestUpdateWithoutUpdater: a phone without firmware slots says so.
func TestUpdateWithoutUpdater(t *testing.T) {
	r := newRig(t)
	r.login()
	repo, _ := laptopRepo()
	_, err := r.client.Update(context.Background(), repo, nil)
	if e := wantCode(t, err, provisioning.CodeRefused); !strings.Contains(e.Message, "does not update its firmware over the console") {
		t.Fatal(e)
	}
}

// TestUpdateServesOnlyTheRepository: whatever the phone asks, the technician's tool reads
// nothing outside metadata/ and targets/.
func TestUpdateServesOnlyTheRepository(t *testing.T) {
	repo, _ := laptopRepo()
	result := make(chan map[string]error, 1)
	r, _ := newUpdateRig(t, func(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error) {
		got := map[string]error{}
		for _, name := range []string{"secret.txt", "metadata/../secret.txt", "/etc/passwd", "targets/../../x", "metadata/./timestamp.json", "metadata\\x"} {
			_, err := repo.ReadFile(ctx, name, 1<<10)
			got[name] = err
		}
		result <- got
		return provisioning.Updated{}, errors.New("done")
	})
	if _, err := r.client.Update(context.Background(), repo, nil); err == nil {
		t.Fatal("no refusal")
	}
	for name, err := range <-result {
		if err == nil || !strings.Contains(err.Error(), "bad message: read: file name") {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestValidRepoName(t *testing.T) {
	for name, ok := range map[string]bool{
		"metadata/timestamp.json": true, "metadata/3.root.json": true,
		"targets/firmware/0123abcd.sim_2.img": true, "targets/registry.reg": true,
		"": false, "metadata": false, "metadata/": false, "secret": false, "targets/../x": false,
		"/metadata/x": false, "metadata//x": false, "metadata/./x": false, "metadata/x y": false,
		"metadata/x\x00": false, "metadataX/y": false, "targets/" + strings.Repeat("a", 300): false,
	} {
		if provisioning.ValidRepoName(name) != ok {
			t.Errorf("%q: want %v", name, ok)
		}
	}
}

// cutUpdate starts an update whose phone reads the whole image, and stops the technician's
// tool after the first answer, as a pulled cable would; result has what the phone's read
// returns.
func cutUpdate(t *testing.T) (r *rig, pulled chan time.Time, result chan error) {
	t.Helper()
	repo, img := laptopRepo()
	result = make(chan error, 1)
	r, pulled = newUpdateRig(t, func(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error) {
		err := repo.ReadRange(ctx, "targets/firmware/ab.sim_2.img", 0, int64(len(img)), int64(len(img)), io.Discard)
		result <- err
		return provisioning.Updated{}, err
	})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := r.client.Update(ctx, repo, func(s provisioning.UpdateStatus) {
		if s.Sent > 0 {
			cancel() // the cable is out: nothing more reaches the phone
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return r, pulled, result
}

// TestUpdateCablePulled: the technician's tool stops answering mid-file: the phone asks again
// and then gives up with ErrLaptopGone, and the tool sees the line go silent.
func TestUpdateCablePulled(t *testing.T) {
	_, pulled, result := cutUpdate(t)
	close(pulled)
	if err := <-result; !errors.Is(err, provisioning.ErrLaptopGone) {
		t.Fatalf("phone: %v, want ErrLaptopGone", err)
	}
}

// TestUpdateInterruptedByHello: a technician who plugs the cable in again and starts over
// gets an answer at once: the phone ends the update it was in and serves the hello.
func TestUpdateInterruptedByHello(t *testing.T) {
	r, _, result := cutUpdate(t)
	if _, err := r.client.Hello(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-result; !errors.Is(err, provisioning.ErrInterrupted) {
		t.Fatalf("phone: %v, want ErrInterrupted", err)
	}
	if n := r.audit.count(`console_command {"device_id":"wp-0123abcd","error":"refused: the technician's tool started over`); n != 1 {
		t.Fatalf("audit:\n%s", strings.Join(r.audit.entries, "\n"))
	}
}

// TestUpdatePipelined plays the technician's tool by hand: the phone sends several read
// requests before the first answer, so the line never waits for a request to cross it; an
// answer lost on the line is asked for again, and the data still comes in order.
func TestUpdatePipelined(t *testing.T) {
	_, img := laptopRepo()
	result := make(chan []byte, 1)
	pulled := make(chan time.Time)
	r := newRig(t)
	r.stop()
	r.updater = updaterFunc(func(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error) {
		var b bytes.Buffer
		err := repo.ReadRange(ctx, "targets/firmware/ab.sim_2.img", 0, int64(len(img)), int64(len(img)), &b)
		result <- b.Bytes()
		return provisioning.Updated{}, err
	})
	r.after = pulledAfter(pulled)
	r.newServer()
	// The test plays the technician's tool on the line itself, frame by frame.
	master, slave := ptytest.Open(t)
	port, err := serial.Open(slave.Name(), &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { served <- r.srv.Serve(ctx, port) }()
	t.Cleanup(func() { cancel(); port.Close(); <-served })
	fr := provisioning.NewFrameReader(master)
	send := func(f provisioning.Frame) {
		t.Helper()
		b, err := provisioning.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := master.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	call := func(typ byte, seq uint16, req, answer any) {
		t.Helper()
		p, _ := json.Marshal(req)
		send(provisioning.Frame{Type: typ, Seq: seq, Payload: p})
		f, err := fr.ReadFrame()
		if err == nil {
			err = provisioning.ParseAnswer(typ, f, answer)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var h provisioning.Hello
	call(provisioning.TypeHello, 1, struct{}{}, &h)
	call(provisioning.TypeAuth, 2, provisioning.Auth{Certificate: r.tech.cert,
		Signature: ed25519.Sign(r.tech.key, provisioning.AuthMessage(h.DeviceID, h.Challenge))}, &provisioning.AuthOK{})
	readRequest := func() (provisioning.Frame, provisioning.Read) {
		t.Helper()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != provisioning.TypeRead {
				continue // progress notes
			}
			rd, err := provisioning.ParseRead(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return f, rd
		}
	}
	answer := func(f provisioning.Frame, rd provisioning.Read) {
		end := min(int(rd.Offset)+rd.Length, len(img))
		send(provisioning.Frame{Type: provisioning.TypeRead | 0x80, Seq: f.Seq,
			Payload: provisioning.AppendData(nil, int64(len(img)), img[rd.Offset:end])})
	}
	send(provisioning.Frame{Type: provisioning.TypeUpdate, Seq: 900, Payload: []byte("{}")})
	var first []provisioning.Frame
	var reads []provisioning.Read
	for range 4 {
		f, rd := readRequest()
		first, reads = append(first, f), append(reads, rd)
	}
	for i, rd := range reads {
		if rd.Offset != int64(i*provisioning.MaxData) {
			t.Fatalf("request %d at %d", i, rd.Offset)
		}
	}
	// The first answer is lost; the others come.
	for i := 1; i < 4; i++ {
		answer(first[i], reads[i])
	}
	pulled <- time.Time{} // the phone's wait for the lost one times out, once
	for {
		f, rd := readRequest()
		answer(f, rd)
		if rd.Offset+int64(rd.Length) >= int64(len(img)) {
			break
		}
	}
	if got := <-result; !bytes.Equal(got, img) {
		t.Fatalf("%d bytes, in the wrong order or short", len(got))
	}
}
