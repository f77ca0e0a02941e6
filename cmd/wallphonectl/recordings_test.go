package main

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/spool"
)

// mkcall [-stop-after K] DIR CALLID NSEG KEYFILE... records a call of NSEG one-second
// segments with the real recorder, sealed to the identities in the KEYFILEs, into a spool in
// DIR laid out as the phone's. With -stop-after K the phone "stops" once the manifest lists
// K segments: the later segments are on flash, the manifest does not list them and says the
// call is not complete.
// With -lose K segment K cannot be kept (the flash is full): the phone ends the call there.
// -number is the number called (+15125550123 unless given).
// scriptDeviceKey stands for the phone's key in the scripts.
var scriptDeviceKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

func mkcall(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("mkcall", flag.ContinueOnError)
	stopAfter := fs.Int("stop-after", -1, "")
	lose := fs.Int("lose", -1, "")
	number := fs.String("number", "+15125550123", "")
	if neg || fs.Parse(args) != nil || fs.NArg() < 4 {
		ts.Fatalf("usage: mkcall [-stop-after K] [-lose K] [-number E164] DIR CALLID NSEG KEYFILE...")
	}
	dir, callID := ts.MkAbs(fs.Arg(0)), fs.Arg(1)
	nseg, err := strconv.Atoi(fs.Arg(2))
	ts.Check(err)
	var recips []string
	for _, f := range fs.Args()[3:] {
		b, err := os.ReadFile(ts.MkAbs(f))
		ts.Check(err)
		ids, err := age.ParseIdentities(bytes.NewReader(b))
		ts.Check(err)
		for _, id := range ids {
			x, ok := id.(*age.X25519Identity)
			if !ok {
				ts.Fatalf("%s: not an X25519 identity", f)
			}
			recips = append(recips, x.Recipient().String())
		}
	}
	sp := &dirSpool{dir: dir, stopAfter: *stopAfter, lose: *lose}
	rec, err := recording.New(recording.Options{Spool: sp, Recipients: recips, Segment: time.Second, DeviceID: "dev-script", DeviceKey: scriptDeviceKey})
	ts.Check(err)
	r, err := rec.Start(recording.CallInfo{CallID: callID, CallerID: "1001",
		E164: *number, Decision: "recorded", Reason: "default_recorded",
		Started: time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)})
	ts.Check(err)
	framesPerSeg := int(time.Second / audio.FrameDuration)
	for n := range nseg * framesPerSeg {
		var caller, called audio.Frame
		for i := range caller {
			sec := float64(n*audio.FrameSamples+i) / audio.SampleRate
			caller[i] = int16(8000 * math.Sin(2*math.Pi*440*sec))
			called[i] = int16(6000 * math.Sin(2*math.Pi*697*sec))
		}
		if err := r.Write(&caller, &called); err != nil {
			if *lose < 0 {
				ts.Fatalf("%v", err)
			}
			break // as the phone does: the call ends at once
		}
		rec.Flush()
	}
	if err := r.Close(); (err != nil) != (*lose >= 0) {
		ts.Fatalf("Close: %v", err)
	}
	ts.Check(rec.Close())
	ts.Check(sp.err)
}

// dirSpool is the recorder's Spool as plain files in the spool's layout.
type dirSpool struct {
	dir       string
	stopAfter int   // keep only manifests listing at most this many segments; -1: all
	lose      int   // fail CommitSegment of this seq as a full flash would; -1: none
	manifests int   // manifests written so far
	err       error // the first failure
}

func (s *dirSpool) CanRecord() error { return nil }
func (s *dirSpool) Room(int64) error { return nil }

func (s *dirSpool) CommitSegment(callID string, seq int, data []byte) (spool.Entry, error) {
	var e spool.Entry
	if seq == s.lose {
		return e, fmt.Errorf("segment %d: %w", seq, spool.ErrFull)
	}
	p, err := spool.CallPaths(s.dir, callID)
	if err != nil {
		return e, err
	}
	return e, s.write(filepath.Join(p.SegmentDir, spool.SegmentFile(seq)), data)
}

func (s *dirSpool) CommitManifest(callID string, data []byte) (spool.Entry, error) {
	// The recorder writes a manifest when the call starts and after every segment, so the
	// n-th one (from 0) lists n segments; the last one, at the end, says the call is complete.
	listed := s.manifests
	s.manifests++
	var e spool.Entry
	if s.stopAfter >= 0 && listed > s.stopAfter {
		return e, nil
	}
	p, err := spool.CallPaths(s.dir, callID)
	if err != nil {
		return e, err
	}
	return e, s.write(p.Manifest, data)
}

func (s *dirSpool) write(path string, data []byte) error {
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil && s.err == nil {
		s.err = err
	}
	return err
}

// size FILE N checks a file's size in bytes.
func size(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: size FILE N")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if want, err := strconv.ParseInt(args[1], 10, 64); err != nil || fi.Size() != want {
		ts.Fatalf("%s is %d bytes, want %s", args[0], fi.Size(), args[1])
	}
}

// perm FILE MODE checks a file's permission bits (octal).
func perm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: perm FILE MODE")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if want, err := strconv.ParseUint(args[1], 8, 32); err != nil || fi.Mode().Perm() != os.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %s", args[0], fi.Mode().Perm(), args[1])
	}
}

// flip FILE inverts one bit of the byte in the middle of a file.
func flip(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: flip FILE")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	if len(b) == 0 {
		ts.Fatalf("%s is empty", args[0])
	}
	b[len(b)/2] ^= 0x01
	ts.Check(os.WriteFile(p, b, 0o600))
}
