package chaos

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
	"github.com/wallphone/wallphone/recording"
)

// The called parties' voice: a tone no prompt and no DTMF key is made of, which SIPp streams
// in a loop from a µ-law WAV.
const (
	voiceHz      = 587
	voiceAmp     = 6000
	voiceSamples = 2 * audio.SampleRate // 2 s: a whole number of the tone's cycles, so the loop does not break it
)

func calleeVoice() []int16 {
	s := make([]int16, voiceSamples)
	for i := range s {
		s[i] = g711.DecodeUlaw(g711.EncodeUlaw(int16(voiceAmp * math.Sin(2*math.Pi*voiceHz*float64(i)/audio.SampleRate))))
	}
	return s
}

// calleeVoiceWAV is the voice as a µ-law WAV for SIPp's rtp_stream.
func calleeVoiceWAV() []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	for _, v := range []any{uint32(36 + voiceSamples), []byte("WAVEfmt "), uint32(16), uint16(7), uint16(1),
		uint32(audio.SampleRate), uint32(audio.SampleRate), uint16(1), uint16(8), []byte("data"), uint32(voiceSamples)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	for _, v := range calleeVoice() {
		b.WriteByte(g711.EncodeUlaw(v))
	}
	return b.Bytes()
}

// callerVoice is what the simulated phone's mouthpiece says: wallphoned's 440 Hz tone.
func callerVoice() []int16 {
	src := audio.Tone(0.1, 440)
	var f audio.Frame
	var s []int16
	for range 50 * 10 {
		src.Next(&f)
		s = append(s, f[:]...)
	}
	return s
}

// voicePrint indexes every run of 8 samples of a looped voice in the forms plaintext audio
// could take: 16-bit linear samples, and G.711 µ-law bytes, alone or interleaved with
// another channel.
type voicePrint struct {
	linear map[[16]byte]bool
	ulaw   map[[8]byte]bool
}

func newVoicePrint(s []int16) voicePrint {
	p := voicePrint{linear: map[[16]byte]bool{}, ulaw: map[[8]byte]bool{}}
	for i := range s {
		var l [16]byte
		var u [8]byte
		for j := range 8 {
			v := s[(i+j)%len(s)]
			binary.LittleEndian.PutUint16(l[2*j:], uint16(v))
			u[j] = g711.EncodeUlaw(v)
		}
		p.linear[l], p.ulaw[u] = true, true
	}
	return p
}

// in reports whether b holds the voice in any of its forms.
func (p voicePrint) in(b []byte) bool {
	for i := 0; i+8 <= len(b); i++ {
		if p.ulaw[[8]byte(b[i:i+8])] || (i+16 <= len(b) && p.linear[[16]byte(b[i:i+16])]) {
			return true
		}
		if i+16 <= len(b) {
			var u [8]byte
			for j := range 8 {
				u[j] = b[i+2*j]
			}
			if p.ulaw[u] {
				return true
			}
		}
	}
	return false
}

// secretNumbers are the numbers the phone must never write down: those of the privileged
// and free calls made, the late-registered one included once it was made privileged.
func (h *harness) secretNumbers() []string {
	set := map[string]bool{}
	for _, o := range h.calls {
		if o.decision == "privileged" || o.decision == "free" {
			set[strings.TrimPrefix(o.spec.e164(), "+1")] = true
		}
	}
	if h.lateVer > 0 {
		set[lateNumber] = true
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	return out
}

func containsAny(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// plaintextFound is what the search found.
type plaintextFound struct {
	bytes, callee, caller, numbers int
	selfTest                       bool
}

// searchPlaintext searches the phone's data directory (spool included), the vault's files on
// the S3 server's disk and everything the agent logged for the voices of both parties and the
// numbers of privileged and free calls. As a check that the search works, both voices must
// be found in a decrypted segment of a recorded call.
func (h *harness) searchPlaintext(objects map[string][]byte, id age.Identity) plaintextFound {
	t := h.t
	callee, caller := newVoicePrint(calleeVoice()), newVoicePrint(callerVoice())
	secret := h.secretNumbers()
	var f plaintextFound
	look := func(where string, b []byte) {
		f.bytes += len(b)
		if callee.in(b) {
			f.callee++
			t.Errorf("%s holds the called party's voice in the clear", where)
		}
		if caller.in(b) {
			f.caller++
			t.Errorf("%s holds the caller's voice in the clear", where)
		}
		for _, n := range secret {
			if containsAny(b, n) {
				f.numbers++
				t.Errorf("%s holds %s, the number of a privileged or free call", where, n)
			}
		}
	}
	roots := []string{h.data, h.s3.DataDir()}
	if h.spoolFS != "" {
		roots = append(roots, h.spoolFS) // the spool, which the data directory links to
	}
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("search: %v", err)
				return nil
			}
			look(p, b)
			return nil
		})
	}
	h.logs.Sync()
	b, err := os.ReadFile(h.logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	look("the agent's log", b)
	for k, b := range objects {
		if !strings.HasSuffix(k, ".age") || strings.HasSuffix(k, "manifest.age") || strings.HasSuffix(k, "record.age") {
			continue
		}
		plain, err := recording.Decrypt(b, id)
		if err == nil && callee.in(plain) && caller.in(plain) {
			f.selfTest = true
			break
		}
	}
	if !f.selfTest {
		t.Errorf("no decrypted segment holds both voices: the search for them proves nothing")
	}
	return f
}
