package provisioning_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/provisioning"
)

var update = flag.Bool("update", false, "rewrite testdata/frames.txt from the encoder")

// vectorInputs are the frames the vectors hold: small cases that show the COBS groups, a
// payload with zero bytes, and one long enough for a full 254-byte group.
var vectorInputs = []vector{
	{name: "hello", typ: 0x01, seq: 1, payload: "{}"},
	{name: "hello-answer-error", typ: 0xff, seq: 1, payload: `{"code":"locked","message":"too many failed attempts","retry_after":900000000000}`},
	{name: "logs", typ: 0x05, seq: 258, payload: `{"lines":20}`},
	{name: "empty", typ: 0x0a, seq: 0, payload: ""},
	{name: "long", typ: 0x06, seq: 65535, payload: `{"name":"sip.json","offset":0,"total":300,"data":"` + string(bytes.Repeat([]byte("A"), 300)) + `"}`},
	{name: "update", typ: 0x0b, seq: 7, payload: "{}"},
	{name: "read", typ: 0x0c, seq: 40000, payload: `{"name":"targets/firmware/sim_2.img","offset":8176,"length":4088}`},
	{name: "progress", typ: 0x0d, seq: 0, payload: `{"stage":"installing","done":1048576,"total":4194304}`},
	// The data answer's payload is binary: the file's size (8 bytes), then its bytes.
	{name: "data-answer", typ: 0x8c, seq: 40000, payload: string(provisioning.AppendData(nil, 12264, []byte{0, 0, 1, 2, 0, 0xff, '\t', '\n'}))},
}

func TestFrameVectors(t *testing.T) {
	if *update {
		var b bytes.Buffer
		b.WriteString("# name\ttype\tseq\tpayload\twire (hex)\n")
		for _, v := range vectorInputs {
			w, err := provisioning.AppendFrame(nil, provisioning.Frame{Type: v.typ, Seq: v.seq, Payload: []byte(v.payload)})
			if err != nil {
				t.Fatal(err)
			}
			p := v.payload
			if strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r > '~' }) {
				p = "hex:" + hex.EncodeToString([]byte(p))
			}
			fmt.Fprintf(&b, "%s\t%#02x\t%d\t%s\t%x\n", v.name, v.typ, v.seq, p, w)
		}
		if err := os.WriteFile(filepath.Join("testdata", "frames.txt"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range readVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			wire, err := hex.DecodeString(v.wire)
			if err != nil {
				t.Fatal(err)
			}
			got, err := provisioning.AppendFrame(nil, provisioning.Frame{Type: v.typ, Seq: v.seq, Payload: []byte(v.payload)})
			if err != nil || !bytes.Equal(got, wire) {
				t.Fatalf("encode: %x, %v; want %x", got, err, wire)
			}
			if bytes.IndexByte(wire[1:len(wire)-1], 0) >= 0 || wire[0] != 0 || wire[len(wire)-1] != 0 {
				t.Fatal("zero inside the frame, or a delimiter missing")
			}
			f, err := provisioning.DecodeFrame(wire[1 : len(wire)-1])
			if err != nil || f.Type != v.typ || f.Seq != v.seq || string(f.Payload) != v.payload {
				t.Fatalf("decode: %+v %v", f, err)
			}
			// Every single-bit error is caught.
			for i := 1; i < len(wire)-1; i++ {
				for bit := range 8 {
					bad := bytes.Clone(wire[1 : len(wire)-1])
					bad[i-1] ^= 1 << bit
					if bad[i-1] == 0 {
						continue // a new delimiter: two short frames, each caught on its own
					}
					if _, err := provisioning.DecodeFrame(bad); !errors.Is(err, provisioning.ErrFrameCorrupt) {
						t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
					}
				}
			}
		})
	}
}

// The frame and message parsers take bytes straight off a serial line in a housing unit:
// whatever arrives, they return an error or a value, never panic, and a frame that decodes
// encodes back to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	seeds := 0
	for _, v := range readVectors(f) {
		w, _ := hex.DecodeString(v.wire)
		f.Add(w[1 : len(w)-1])
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Add([]byte{0x01})
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := provisioning.DecodeFrame(b)
		if err != nil {
			return
		}
		w, err := provisioning.AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		if !bytes.Equal(w[1:len(w)-1], b) {
			t.Fatalf("round trip: %x → %x", b, w)
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	for _, v := range readVectors(f) {
		w, _ := hex.DecodeString(v.wire)
		f.Add(append(append([]byte("noise\x00"), w...), w[:len(w)/2]...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := provisioning.NewFrameReader(bytes.NewReader(b))
		for range len(b) + 1 {
			fm, err := fr.ReadFrame()
			if err == nil && len(fm.Payload) > provisioning.MaxPayload {
				t.Fatal("oversized frame accepted")
			}
			if err != nil && !errors.Is(err, provisioning.ErrFrameCorrupt) && !errors.Is(err, provisioning.ErrFrameTooLarge) {
				return // end of input
			}
		}
		t.Fatal("reader did not reach the end of its input")
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []struct {
		typ byte
		p   string
	}{
		{provisioning.TypeHello, "{}"},
		{provisioning.TypeAuth, `{"certificate":"eyJ9","signature":"AAAA"}`},
		{provisioning.TypeLogs, `{"lines":20}`},
		{provisioning.TypePut, `{"name":"sip.json","offset":0,"total":2,"data":"e30="}`},
		{provisioning.TypeEnroll, `{"items":{"sip.json":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}`},
		{provisioning.TypeReset, `{"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}`},
		{provisioning.TypeReboot, "{} {}"},
	} {
		f.Add(s.typ, []byte(s.p))
	}
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		v, err := provisioning.ParseRequest(typ, p)
		if err != nil {
			return
		}
		switch r := v.(type) {
		case provisioning.Put:
			if r.Offset < 0 || r.Offset+len(r.Data) > r.Total || r.Total > provisioning.MaxItemSize {
				t.Fatalf("put accepted: %+v", r)
			}
			if r.Name == "" || r.Name[0] == '.' || bytes.ContainsAny([]byte(r.Name), "/\\") {
				t.Fatalf("put name accepted: %q", r.Name)
			}
		case provisioning.Logs:
			if r.Lines < 1 {
				t.Fatalf("logs accepted: %+v", r)
			}
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	f.Add(byte(0xff), []byte(`{"code":"locked","message":"x","retry_after":5}`))
	f.Add(byte(0x81), []byte(`{"device_id":"wp-1","firmware":"x","device_key":"","key_fingerprint":"","challenge":"AA==","challenge_ttl":1}`))
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		var h provisioning.Hello
		err := provisioning.ParseAnswer(provisioning.TypeHello, provisioning.Frame{Type: typ, Payload: p}, &h)
		var e *provisioning.Error
		if errors.As(err, &e) && e.Code == "" {
			t.Fatal("error answer without a code")
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	fac := newFacility(f, "county-jail")
	tc := fac.issue(f, "Ana", epoch, epoch.Add(1))
	f.Add(tc.cert)
	f.Add([]byte(`{"body":"e30=","signer":"","signature":""}`))
	trust, _ := provisioning.ParseTrust([]byte(fac.trustLine()))
	orig, err := provisioning.ParseCertificate(tc.cert)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := provisioning.ParseCertificate(b)
		if err != nil {
			return
		}
		if len(c.PublicKey) != 32 || !c.NotAfter.After(c.NotBefore) {
			t.Fatalf("certificate accepted: %+v", c.CertBody)
		}
		// The signature covers the body's bytes: whatever verifies says what was issued.
		if err := c.Verify(trust, "", epoch); err == nil {
			if c.Name != orig.Name || c.Facility != orig.Facility || !bytes.Equal(c.PublicKey, orig.PublicKey) ||
				!c.NotAfter.Equal(orig.NotAfter) || !c.NotBefore.Equal(orig.NotBefore) || c.Serial != orig.Serial {
				t.Fatalf("forged certificate verifies: %+v", c.CertBody)
			}
		}
	})
}

func FuzzParseTrust(f *testing.F) {
	f.Add([]byte("# keys\ncounty-jail ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"))
	f.Add([]byte("a b c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := provisioning.ParseTrust(b)
		if err != nil {
			return
		}
		if tr.Len() > bytes.Count(b, []byte("ed25519:")) {
			t.Fatal("more keys than lines")
		}
	})
}

// The technician's tool parses the phone's read requests, and the phone the tool's data
// answers, during an update: neither may panic, a read accepted names only a repository file
// with a length a frame carries, and a data answer round-trips.
func FuzzParseRead(f *testing.F) {
	seeds := 0
	for _, v := range readVectors(f) {
		if v.typ == provisioning.TypeRead {
			f.Add([]byte(v.payload))
			seeds++
		}
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Add([]byte(`{"name":"metadata/../x","offset":0,"length":1}`))
	f.Add([]byte(`{"name":"metadata/timestamp.json","offset":-1,"length":5000}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := provisioning.ParseRead(b)
		if err != nil {
			return
		}
		if !provisioning.ValidRepoName(r.Name) || strings.Contains(r.Name, "..") || strings.HasPrefix(r.Name, "/") ||
			r.Offset < 0 || r.Length < 1 || r.Length > provisioning.MaxData {
			t.Fatalf("read accepted: %+v", r)
		}
	})
}

func FuzzParseData(f *testing.F) {
	seeds := 0
	for _, v := range readVectors(f) {
		if v.typ == provisioning.TypeRead|0x80 {
			f.Add([]byte(v.payload))
			seeds++
		}
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Add([]byte{0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		size, data, err := provisioning.ParseData(b)
		if err != nil {
			return
		}
		if size < 0 {
			t.Fatalf("size %d", size)
		}
		if !bytes.Equal(provisioning.AppendData(nil, size, data), b) {
			t.Fatal("round trip")
		}
	})
}
