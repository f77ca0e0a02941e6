package bootenv

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envFiles makes copies zero-filled files in a temp dir (blank, as a new partition) and a config
// naming them, each copy size bytes.
func envFiles(t *testing.T, copies, size int) Config {
	t.Helper()
	var c Config
	for i := range copies {
		p := filepath.Join(t.TempDir(), "env"+string(rune('0'+i))+".bin")
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Copies = append(c.Copies, Location{Path: p, Size: size})
	}
	return c
}

func mustOpen(t *testing.T, c Config) *Env {
	t.Helper()
	e, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func vars(e *Env) map[string]string { return maps.Collect(e.All()) }

// rawCopy reads copy i as bytes.
func rawCopy(t *testing.T, c Config, i int) []byte {
	t.Helper()
	b, err := os.ReadFile(c.Copies[i].Path)
	if err != nil {
		t.Fatal(err)
	}
	return b[c.Copies[i].Offset : c.Copies[i].Offset+int64(c.Copies[i].Size)]
}

func TestSaveAndOpenRoundTrip(t *testing.T) {
	for _, copies := range []int{1, 2} {
		c := envFiles(t, copies, 0x2000)
		e, err := OpenOrDefault(c, map[string]string{"bootlimit": "3"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"bootlimit": "3", "boot_slot": "b", "empty": "", "spaces": "a b  c", "eq": "x=y=z"}
		for k, v := range want {
			if err := e.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Save(); err != nil {
			t.Fatal(err)
		}
		if got := vars(mustOpen(t, c)); !maps.Equal(got, want) {
			t.Errorf("%d copies: read back %v, want %v", copies, got, want)
		}
	}
}

// The image is what the format says: CRC of the data area, the flag, sorted entries, an empty
// entry, zero padding.
func TestImageLayout(t *testing.T) {
	c := envFiles(t, 2, 64)
	e, _ := OpenOrDefault(c, map[string]string{"b": "2", "a": "1"})
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
	img := rawCopy(t, c, 0)
	data := "a=1\x00b=2\x00\x00" + strings.Repeat("\x00", 64-5-9)
	if string(img[5:]) != data {
		t.Errorf("data %q, want %q", img[5:], data)
	}
	if img[4] != 1 {
		t.Errorf("flag %d, want 1", img[4])
	}
	if got, want := binary.LittleEndian.Uint32(img), crc32.ChecksumIEEE([]byte(data)); got != want {
		t.Errorf("crc %#x, want %#x", got, want)
	}
}

// Saves alternate between the copies with rising flags; the copy in use is never written.
func TestRedundantSavesAlternate(t *testing.T) {
	c := envFiles(t, 2, 256)
	e, _ := OpenOrDefault(c, nil)
	for n := 1; n <= 4; n++ {
		before := [2][]byte{rawCopy(t, c, 0), rawCopy(t, c, 1)}
		e.Set("n", strings.Repeat("x", n))
		if err := e.Save(); err != nil {
			t.Fatal(err)
		}
		wrote := (n - 1) % 2
		if got := rawCopy(t, c, 1-wrote); string(got) != string(before[1-wrote]) {
			t.Errorf("save %d touched copy %d, the one in use", n, 1-wrote)
		}
		if flag := rawCopy(t, c, wrote)[4]; flag != byte(n) {
			t.Errorf("save %d: copy %d flag %d, want %d", n, wrote, flag, n)
		}
		if v, _ := mustOpen(t, c).Get("n"); len(v) != n {
			t.Errorf("save %d: read back %q", n, v)
		}
	}
}

func TestNewerCopy(t *testing.T) {
	for _, tc := range []struct {
		f0, f1 byte
		want   int
	}{
		{1, 2, 1}, {2, 1, 0}, {7, 7, 0}, {255, 0, 1}, {0, 255, 0}, {254, 255, 1}, {0, 1, 1},
	} {
		if got := newer(tc.f0, tc.f1); got != tc.want {
			t.Errorf("newer(%d, %d) = %d, want %d", tc.f0, tc.f1, got, tc.want)
		}
	}
}

// After 255 the flag wraps to 0 and the copy with 0 is still the newer one.
func TestFlagWraps(t *testing.T) {
	c := envFiles(t, 2, 256)
	e, _ := OpenOrDefault(c, nil)
	for n := range 260 {
		e.Set("n", strings.Repeat("x", n%50))
		if err := e.Save(); err != nil {
			t.Fatal(err)
		}
		if v, _ := mustOpen(t, c).Get("n"); len(v) != n%50 {
			t.Fatalf("save %d: read back %d bytes", n, len(v))
		}
	}
}

// A write torn partway (a wrong byte anywhere the CRC covers, or in the CRC) leaves the previous
// copy in use. The flag byte is outside the CRC in U-Boot's format; a wrong flag alone leaves
// whole data, whichever copy it picks.
func TestTornWriteKeepsOtherCopy(t *testing.T) {
	c := envFiles(t, 2, 256)
	e, _ := OpenOrDefault(c, nil)
	e.Set("boot_slot", "a")
	e.Save() // copy 0
	e.Set("boot_slot", "b")
	e.Save() // copy 1
	for _, at := range []int{0, 3, 5, 20, 255} {
		img := rawCopy(t, c, 1)
		img[at] ^= 0x5a
		os.WriteFile(c.Copies[1].Path, img, 0o600)
		if v, _ := mustOpen(t, c).Get("boot_slot"); v != "a" {
			t.Errorf("byte %d of the new copy torn: boot_slot %q, want the old copy's a", at, v)
		}
		img[at] ^= 0x5a
		os.WriteFile(c.Copies[1].Path, img, 0o600)
	}
	// And a save after a torn write goes to the torn copy, not the good one.
	img := rawCopy(t, c, 1)
	img[10] ^= 1
	os.WriteFile(c.Copies[1].Path, img, 0o600)
	e = mustOpen(t, c)
	good := rawCopy(t, c, 0)
	e.Set("x", "1")
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
	if string(rawCopy(t, c, 0)) != string(good) {
		t.Error("save after a torn write overwrote the good copy")
	}
	if v, _ := mustOpen(t, c).Get("x"); v != "1" {
		t.Errorf("x = %q after saving over the torn copy", v)
	}
}

func TestNoValidCopy(t *testing.T) {
	for _, copies := range []int{1, 2} {
		c := envFiles(t, copies, 128)
		for _, cp := range c.Copies {
			os.WriteFile(cp.Path, []byte(strings.Repeat("\xff", 128)), 0o600)
		}
		_, err := Open(c)
		if !errors.Is(err, ErrNoValidCopy) || !strings.Contains(err.Error(), "CRC") {
			t.Errorf("%d erased copies: Open err = %v, want ErrNoValidCopy naming the CRC", copies, err)
		}
		e, err := OpenOrDefault(c, map[string]string{"bootlimit": "3"})
		if err != nil {
			t.Fatal(err)
		}
		if got := vars(e); !maps.Equal(got, map[string]string{"bootlimit": "3"}) {
			t.Errorf("defaults %v", got)
		}
	}
	// A file shorter than the environment is blank, so a new file-backed environment can start
	// as an empty file.
	c := envFiles(t, 1, 128)
	os.WriteFile(c.Copies[0].Path, nil, 0o600)
	if _, err := Open(c); !errors.Is(err, ErrNoValidCopy) {
		t.Errorf("empty file: Open err = %v", err)
	}
	if e, err := OpenOrDefault(c, map[string]string{"k": "v"}); err != nil {
		t.Errorf("empty file: OpenOrDefault err = %v", err)
	} else if err := e.Save(); err != nil {
		t.Errorf("empty file: Save: %v", err)
	} else if v, _ := mustOpen(t, c).Get("k"); v != "v" {
		t.Errorf("empty file: after Save k = %q", v)
	}
	// A missing file is an error for both: the path is wrong, not blank.
	c.Copies[0].Path += ".missing"
	if _, err := OpenOrDefault(c, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

func TestSetRejects(t *testing.T) {
	c := envFiles(t, 1, 32) // 28 bytes of data
	e, _ := OpenOrDefault(c, nil)
	for _, kv := range [][2]string{{"", "x"}, {"a=b", "x"}, {"a\x00", "x"}, {"a", "x\x00y"}} {
		if err := e.Set(kv[0], kv[1]); !errors.Is(err, ErrBadName) {
			t.Errorf("Set(%q, %q) = %v, want ErrBadName", kv[0], kv[1], err)
		}
	}
	if err := e.Set("n", strings.Repeat("v", 24)); err != nil { // "n=" + 24 + NUL + final NUL = 28
		t.Fatalf("a variable that just fits: %v", err)
	}
	if err := e.Set("n", strings.Repeat("v", 25)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte over: %v, want ErrTooLarge", err)
	}
	if err := e.Set("m", ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a second variable with no room: %v, want ErrTooLarge", err)
	}
	if v, _ := e.Get("n"); len(v) != 24 {
		t.Errorf("a refused Set changed the value to %d bytes", len(v))
	}
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
	e.Unset("n")
	e.Unset("never")
	if _, ok := e.Get("n"); ok {
		t.Error("n still set after Unset")
	}
}

// decodeCopy follows libubootenv: the last of a repeated name wins, entries without '=' or
// with an empty name are skipped, and data without its closing empty entry is invalid.
func TestDecodeCopy(t *testing.T) {
	img := func(data string) []byte {
		b := make([]byte, 4+len(data))
		copy(b[4:], data)
		binary.LittleEndian.PutUint32(b, crc32.ChecksumIEEE(b[4:]))
		return b
	}
	_, got, err := decodeCopy(img("b=1\x00junk\x00=x\x00a=2\x00b=3\x00\x00\xff\xff"), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []variable{{"a", "2"}, {"b", "3"}}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, data := range []string{"a=1", "a=1\x00", "a=1\x00b=2"} {
		if _, _, err := decodeCopy(img(data), false); !errors.Is(err, errNoEnd) {
			t.Errorf("%q: err = %v, want errNoEnd", data, err)
		}
	}
	if _, v, err := decodeCopy(img("\x00"), false); err != nil || len(v) != 0 {
		t.Errorf("empty environment: %v, %v", v, err)
	}
}

// An environment at an offset in a larger file (a flash image holding more than the
// environment) is read and written there, leaving the bytes around it alone.
func TestOffsetAndNegativeOffset(t *testing.T) {
	p := filepath.Join(t.TempDir(), "flash.img")
	orig := []byte(strings.Repeat("\xa5", 4096))
	for _, off := range []int64{1024, -1024} {
		os.WriteFile(p, orig, 0o600)
		c := Config{Copies: []Location{{Path: p, Offset: off, Size: 512}}}
		e, err := OpenOrDefault(c, map[string]string{"k": "v"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Save(); err != nil {
			t.Fatal(err)
		}
		if v, _ := mustOpen(t, c).Get("k"); v != "v" {
			t.Errorf("offset %d: k = %q", off, v)
		}
		b, _ := os.ReadFile(p)
		at := off
		if at < 0 {
			at += int64(len(orig))
		}
		if len(b) != len(orig) || string(b[:at]) != string(orig[:at]) || string(b[at+512:]) != string(orig[at+512:]) {
			t.Errorf("offset %d: bytes outside the environment changed", off)
		}
	}
}
