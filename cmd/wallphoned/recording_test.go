package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/internal/tmpfs"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
)

// initDemo makes the demo facility in keys if it is not there, as make run does with
// wallphonectl demo init.
func initDemo(t *testing.T, keys string) {
	t.Helper()
	if err := demo.Init(keys, nil); err != nil {
		t.Fatal(err)
	}
}

// runAgent runs the agent in this process on the virtual clock, with script as its input,
// and returns what it logged as JSON.
func runAgent(t *testing.T, data string, script string, extra ...string) string {
	t.Helper()
	initDemo(t, data+"-keys")
	var out, errOut bytes.Buffer
	args := append([]string{"--board", "sim", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none"}, extra...)
	if err := run(context.Background(), args, strings.NewReader(script), &out, &errOut); err != nil {
		t.Fatalf("agent: %v\n%s", err, errOut.String())
	}
	return out.String()
}

const recordedCall = `offhook
press 1
press 1001#
press 1234#
press 5125550123#
wait 8s
callee answer
wait 15s
callee accept
wait 12s
onhook
`

// toneWindows indexes every run of 8 samples of the simulated caller's voice (the 440 Hz tone
// the simulated mouthpiece plays), in the forms plaintext audio could take on flash: linear
// 16-bit samples and G.711 µ-law bytes.
type toneWindows struct {
	pcm  map[[16]byte]bool
	ulaw map[[8]byte]bool
}

func newToneWindows(seconds int) toneWindows {
	w := toneWindows{pcm: map[[16]byte]bool{}, ulaw: map[[8]byte]bool{}}
	src := audio.Tone(0.1, 440)
	var samples []int16
	var f audio.Frame
	for range seconds * 50 {
		src.Next(&f)
		samples = append(samples, f[:]...)
	}
	for i := 0; i+8 <= len(samples); i++ {
		var p [16]byte
		var u [8]byte
		for j := range 8 {
			v := samples[i+j]
			p[2*j], p[2*j+1] = byte(v), byte(uint16(v)>>8)
			u[j] = g711.EncodeUlaw(v)
		}
		w.pcm[p] = true
		w.ulaw[u] = true
	}
	return w
}

// find reports where in b the tone appears, as linear samples, as µ-law, or as µ-law
// interleaved with another channel; "" if nowhere.
func (w toneWindows) find(b []byte) string {
	for i := 0; i+16 <= len(b); i++ {
		if w.pcm[[16]byte(b[i:i+16])] {
			return "linear samples"
		}
		if w.ulaw[[8]byte(b[i:i+8])] {
			return "µ-law"
		}
	}
	for i := 0; i+16 <= len(b); i++ {
		var u [8]byte
		for j := range 8 {
			u[j] = b[i+2*j]
		}
		if w.ulaw[u] {
			return "interleaved µ-law"
		}
	}
	return ""
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNoAudioAtRest records calls that carry a known tone, then searches every byte under the
// data directory for it. Only the recorded call leaves files in the spool, and even those
// hold the tone only once decrypted with a key the phone does not have.
func TestNoAudioAtRest(t *testing.T) {
	tone := newToneWindows(120)
	for _, tt := range []struct {
		name     string
		script   string
		recorded bool
	}{
		{"recorded", recordedCall, true},
		{"privileged", strings.Replace(recordedCall, "5125550123#", "5125550100#", 1), false},
		{"free", strings.Replace(recordedCall, "5125550123#", "8006564673#", 1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			out := runAgent(t, data, tt.script)
			if got := strings.Contains(out, `"msg":"recording_started"`); got != tt.recorded {
				t.Fatalf("recording_started: %v", got)
			}
			if !strings.Contains(out, `"msg":"connected"`) {
				t.Fatal("the call did not connect")
			}
			files := readTree(t, data)
			var sealed []string
			for p, b := range files {
				if where := tone.find(b); where != "" {
					t.Errorf("%s holds the caller's audio as %s", p, where)
				}
				if strings.Contains(p, string(filepath.Separator)+"segments"+string(filepath.Separator)) ||
					strings.Contains(p, string(filepath.Separator)+"manifests"+string(filepath.Separator)) {
					sealed = append(sealed, p)
				}
			}
			if !tt.recorded {
				if len(sealed) != 0 {
					t.Fatalf("an unrecorded call left %v", sealed)
				}
				return
			}
			// The scan can find the tone: it is in the segments once they are opened.
			if len(sealed) < 3 {
				t.Fatalf("sealed files %v", sealed)
			}
			id := demoIdentity(t, data+"-keys", "escrow.key")
			found := false
			for _, p := range sealed {
				if !strings.HasSuffix(filepath.Dir(p), "manifests") {
					plain, err := recording.Decrypt(files[p], id)
					if err != nil {
						t.Fatal(err)
					}
					if tone.find(plain) != "" {
						found = true
					}
				}
			}
			if !found {
				t.Fatal("the tone is not in the decrypted segments either: the scan proves nothing")
			}
		})
	}
}

func demoIdentity(t *testing.T, dir, name string) age.Identity {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil || len(ids) != 1 {
		t.Fatal(err)
	}
	return ids[0]
}

// TestDestroyOnDiscovery records a call, then starts the phone with a registry in which the
// number called is privileged: the recording is destroyed on the phone, a signed purge
// request waits for the uplink, and nothing keeps the number.
func TestDestroyOnDiscovery(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	out := runAgent(t, data, recordedCall)
	if !strings.Contains(out, `"msg":"recording_started"`) {
		t.Fatal("not recorded")
	}
	callID := attorneyLater(t, data)
	out = runAgent(t, data, "quit\n")
	if !strings.Contains(out, `"msg":"registry installed","event":"registry_installed","version":2,"previous":1,"entries":5`) ||
		!strings.Contains(out, `"via":"delta"`) {
		t.Fatalf("registry 2 not installed by delta:\n%s", out)
	}
	if !strings.Contains(out, `"msg":"recording destroyed: the number called is privileged","event":"recording_destroyed","call_id":"`+callID+`","kind":"attorney","registry_version":2`) {
		t.Fatalf("no recording_destroyed event:\n%s", out)
	}
	req := destroyed(t, data, callID)
	if !bytes.Contains(req, []byte("request")) {
		t.Fatalf("purge request %s", req)
	}
	for p, b := range readTree(t, data) {
		if bytes.Contains(b, []byte("5550123")) && !strings.HasSuffix(p, "policy.json") {
			t.Errorf("%s still holds the number", p)
		}
	}
	db, err := store.Open(filepath.Join(data, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Calls(func(id string, b []byte) error {
		var r callrecord.Record
		json.Unmarshal(b, &r)
		if id == callID && (!r.Destroyed || r.Number != "" || r.DestroyedRegistryVersion != 2) {
			t.Errorf("record %+v", r)
		}
		return nil
	})
	_ = io.Discard
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFullFlashRefusesBeforeTheNotice: with the data file system too full to keep a whole
// call, a recorded call is refused before the notice and before anyone is dialled; it is
// never talked unrecorded. A privileged call still goes through: it needs no room.
func TestFullFlashRefusesBeforeTheNotice(t *testing.T) {
	data := filepath.Join(tmpfs.Mount(t, 64<<20), "data")
	runAgent(t, data, "quit\n") // enrol, and the database and spool made, before the flash fills
	tmpfs.Fill(t, filepath.Dir(data), 4<<20)
	out := runAgent(t, data, recordedCall)
	for _, want := range []string{`"msg":"recording_failed".*spool is full`, `"msg":"call_ended".*"reason":"recording_unavailable"`,
		`"msg":"prompt".*"prompt":"unavailable"`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no %s in the log:\n%s", want, out)
		}
	}
	for _, never := range []string{`"prompt":"notice_caller"`, `"prompt":"notice_callee"`, `"msg":"dialing"`, `"msg":"connected"`} {
		if strings.Contains(out, never) {
			t.Errorf("%s on a call that could not be recorded:\n%s", never, out)
		}
	}
}

// attorneyLater returns the one call in data's spool, and publishes in the demo repository a
// registry that makes the number it called (the demo's recorded number) an attorney's.
func attorneyLater(t *testing.T, data string) string {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(data, "spool"), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	calls, _ := sp.Calls()
	sp.Close()
	if len(calls) != 1 {
		t.Fatalf("spooled calls %v", calls)
	}
	if err := demo.PublishRegistry(data+"-keys", 2, []registry.Item{{Number: "+15125550123", Kind: registry.Attorney, Label: "new attorney"}}, nil); err != nil {
		t.Fatal(err)
	}
	return calls[0]
}

// destroyed checks that data's spool holds nothing of callID but its purge request, which it
// returns.
func destroyed(t *testing.T, data, callID string) []byte {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(data, "spool"), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if u := sp.Usage(); u.Segments != 0 || u.Manifests != 0 || u.Purges != 1 {
		t.Fatalf("spool after the sweep: %+v", u)
	}
	segs, _ := filepath.Glob(filepath.Join(data, "spool", "segments", "*", "*"))
	mans, _ := filepath.Glob(filepath.Join(data, "spool", "manifests", "*"))
	if len(segs)+len(mans) != 0 {
		t.Fatalf("files left: %v %v", segs, mans)
	}
	req, err := sp.ReadPurge(callID)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
