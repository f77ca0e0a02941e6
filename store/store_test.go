package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/store"
)

// checkFile opens the file with bbolt itself, read-only, and runs its consistency check. It
// also proves that whoever had the file open before let go of its lock.
func checkFile(t *testing.T, path string) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
		return
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("check %s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
	}
}

// open opens the state database at path; at the end of the test it is closed (a second Close
// is harmless) and checked.
func open(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, path)
	})
	return db
}

// newDB makes a database in a fresh directory, closes it and returns its path.
func newDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db := open(t, path)
	if err := db.PutCall("c1", []byte(`{"reason":"caller_hangup"}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawGet reads one key with bbolt directly, after the store has closed the file.
func rawGet(t *testing.T, path, bucket, key string) []byte {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v []byte
	err = b.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return fmt.Errorf("no bucket %q", bucket)
		}
		if got := bk.Get([]byte(key)); got != nil {
			v = bytes.Clone(got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type call struct{ id, record string }

func allCalls(t *testing.T, db *store.DB) []call {
	t.Helper()
	var out []call
	if err := db.Calls(func(id string, rec []byte) error {
		out = append(out, call{id, string(rec)})
		return nil
	}); err != nil {
		t.Fatalf("Calls: %v", err)
	}
	return out
}

func TestOpenCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := open(t, path)
	if db.Path() != path {
		t.Errorf("Path = %q, want %q", db.Path(), path)
	}
	id, err := db.DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^wp-[0-9a-f]{16}$`).MatchString(id) {
		t.Errorf("DeviceID = %q, want wp- and 16 hex digits", id)
	}
	if got := allCalls(t, db); len(got) != 0 {
		t.Errorf("fresh database has calls: %v", got)
	}
	if l, err := db.Lockout("1001"); err != nil || l != (pin.Lockout{}) {
		t.Errorf("Lockout of a fresh database = %+v, %v; want zero", l, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	db.Close()
	if v := rawGet(t, path, "meta", "schema"); !bytes.Equal(v, []byte{1}) {
		t.Errorf("schema = %v, want [1]", v)
	}
}

func TestDeviceIDsDiffer(t *testing.T) {
	a, err := open(t, filepath.Join(t.TempDir(), "a.db")).DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := open(t, filepath.Join(t.TempDir(), "b.db")).DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two phones got the same device id %q", a)
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	until := time.Date(2031, 4, 5, 6, 7, 8, 9, time.UTC)

	db := open(t, path)
	id, err := db.DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetLockout("1001", pin.Lockout{Failures: 3, Until: until}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetLockout("1002", pin.Lockout{Failures: 1}); err != nil {
		t.Fatal(err)
	}
	// Stored out of order: Calls returns them in call-id order.
	for _, c := range []call{{"c3", "three"}, {"c1", "one"}, {"c2", "two"}} {
		if err := db.PutCall(c.id, []byte(c.record)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)

	for round := range 2 {
		db := open(t, path)
		if got, err := db.DeviceID(); err != nil || got != id {
			t.Errorf("round %d: DeviceID = %q, %v; want %q", round, got, err, id)
		}
		l, err := db.Lockout("1001")
		if err != nil || l.Failures != 3 || !l.Until.Equal(until) {
			t.Errorf("round %d: Lockout(1001) = %+v, %v; want 3 failures until %v", round, l, err, until)
		}
		if l, err := db.Lockout("1002"); err != nil || l.Failures != 1 || !l.Until.IsZero() {
			t.Errorf("round %d: Lockout(1002) = %+v, %v; want 1 failure, no time", round, l, err)
		}
		want := []call{{"c1", "one"}, {"c2", "two"}, {"c3", "three"}}
		if got := allCalls(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("round %d: Calls = %v, want %v", round, got, want)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPutCallReplaces(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "state.db"))
	for _, rec := range []string{"first", "second"} {
		if err := db.PutCall("c1", []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := allCalls(t, db), []call{{"c1", "second"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Calls = %v, want %v", got, want)
	}
}

func TestSetLockoutZeroDeletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := open(t, path)
	if err := db.SetLockout("1001", pin.Lockout{Failures: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetLockout("1002", pin.Lockout{Failures: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetLockout("1001", pin.Lockout{}); err != nil {
		t.Fatal(err)
	}
	// Clearing a caller ID that has nothing stored is not an error.
	if err := db.SetLockout("1003", pin.Lockout{}); err != nil {
		t.Fatal(err)
	}
	if l, err := db.Lockout("1001"); err != nil || l != (pin.Lockout{}) {
		t.Errorf("Lockout(1001) after clearing = %+v, %v; want zero", l, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The key is gone, not stored as a zero record.
	if v := rawGet(t, path, "lockouts", "1001"); v != nil {
		t.Errorf("cleared lockout still stored: %q", v)
	}
	if v := rawGet(t, path, "lockouts", "1002"); v == nil {
		t.Errorf("lockout of 1002 lost when 1001 was cleared")
	}
	if v := rawGet(t, path, "lockouts", "1003"); v != nil {
		t.Errorf("clearing 1003 stored %q", v)
	}
}

func TestLockoutUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := open(t, path)
	db.Close()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("lockouts")).Put([]byte("1001"), []byte("not json"))
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	db = open(t, path)
	_, err = db.Lockout("1001")
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"1001"`) {
		t.Errorf("Lockout of a bad record: err = %v, want one naming the file and the caller ID", err)
	}
}

func TestCallsCallbackError(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "state.db"))
	for _, id := range []string{"c1", "c2", "c3"} {
		if err := db.PutCall(id, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	var seen []string
	err := db.Calls(func(id string, _ []byte) error {
		seen = append(seen, id)
		if id == "c2" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Calls = %v, want the callback's error", err)
	}
	if fmt.Sprint(seen) != "[c1 c2]" {
		t.Errorf("Calls went on after the callback failed: saw %v", seen)
	}
}

// TestCallsCopies checks that the records Calls hands out are the caller's own: changing them
// changes nothing stored, and they stay readable after the transaction and the file are gone.
// Bytes that pointed into bbolt's read-only map would fault; the test turns that fault into a
// failure instead of a crash.
func TestCallsCopies(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("record bytes are not copies of the database's: %v", r)
		}
	}()

	path := filepath.Join(t.TempDir(), "state.db")
	db := open(t, path)
	// Enough that the bucket has pages of its own: bbolt may copy the values of a small
	// bucket that is stored inline, which would hide the difference.
	want := map[string]string{}
	for i := range 16 {
		want[fmt.Sprintf("c%02d", i)] = fmt.Sprintf("record %02d ", i) + strings.Repeat("-", 1000)
	}
	for id, rec := range want {
		if err := db.PutCall(id, []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	kept := map[string][]byte{}
	if err := db.Calls(func(id string, rec []byte) error {
		kept[id] = rec
		for i := range rec {
			rec[i] = 'X'
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Mutate again after the callback returned.
	for _, rec := range kept {
		rec[0] = 'Y'
	}
	got := map[string]string{}
	for _, c := range allCalls(t, db) {
		got[c.id] = c.record
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored records changed through the returned slices: %v, want %v", got, want)
	}

	// The kept slices still hold what the caller wrote into them after the database closed.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for id, rec := range kept {
		if wantRec := "Y" + strings.Repeat("X", len(want[id])-1); string(rec) != wantRec {
			t.Errorf("kept record %s = %q after Close, want %q", id, rec, wantRec)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "state.db"))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				id := fmt.Sprintf("g%d-c%02d", g, i)
				if err := db.PutCall(id, []byte(id)); err != nil {
					t.Error(err)
					return
				}
				if err := db.SetLockout(fmt.Sprint(g), pin.Lockout{Failures: i + 1}); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.Lockout(fmt.Sprint(g)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(allCalls(t, db)); n != 4*20 {
		t.Errorf("%d calls stored, want %d", n, 4*20)
	}
	for g := range 4 {
		if l, err := db.Lockout(fmt.Sprint(g)); err != nil || l.Failures != 20 {
			t.Errorf("Lockout(%d) = %+v, %v; want 20 failures", g, l, err)
		}
	}
}

// wantDamaged checks that Open refuses the file as damaged, says what to do, and leaves the
// file exactly as it was.
func wantDamaged(t *testing.T, path string) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(path)
	if err == nil {
		db.Close()
		t.Fatalf("Open of a damaged file succeeded")
	}
	if !errors.Is(err, store.ErrDamaged) {
		t.Errorf("Open: %v; want ErrDamaged", err)
	}
	for _, s := range []string{path, "move the file aside"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Open: %q does not say %q", err, s)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Open changed the damaged file (%d bytes before, %d after)", len(before), len(after))
	}
}

func TestOpenDamaged(t *testing.T) {
	garbage := func(n int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			b := bytes.Repeat([]byte("this is not a bbolt database. "), n/30+1)[:n]
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	realDB := func(damage func(t *testing.T, b []byte) []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			src := newDB(t)
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, damage(t, b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	pageSize := os.Getpagesize()
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"short garbage", garbage(20)},
		{"garbage of two pages", garbage(2 * pageSize)},
		{"garbage of many pages", garbage(16 * pageSize)},
		{"truncated to 100 bytes", realDB(func(_ *testing.T, b []byte) []byte { return b[:100] })},
		{"truncated to one page", realDB(func(_ *testing.T, b []byte) []byte { return b[:pageSize] })},
		{"truncated to the meta pages", realDB(func(_ *testing.T, b []byte) []byte { return b[:2*pageSize] })},
		{"pages after the meta pages overwritten", realDB(func(t *testing.T, b []byte) []byte {
			for i := 2 * pageSize; i < 8*pageSize; i++ {
				b[i] = 0xaa
			}
			return b
		})},
		{"both meta pages flipped", realDB(func(t *testing.T, b []byte) []byte {
			if len(b) < 2*pageSize {
				t.Fatalf("database of %d bytes has no two meta pages", len(b))
			}
			// Inside each meta page, after the page header: magic, version, page size...
			for _, off := range []int{0, pageSize} {
				for i := off + 16; i < off+64; i++ {
					b[i] ^= 0xff
				}
			}
			return b
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tc.make(t, path)
			wantDamaged(t, path)
		})
	}
}

func TestOpenOneMetaPageDamaged(t *testing.T) {
	// bbolt keeps two meta pages so that a torn write of one is survivable: the database opens
	// from the other, with everything committed before.
	path := newDB(t)
	db := open(t, path)
	id, err := db.DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The newer meta page has the higher transaction id; damage the older one, so that the
	// committed state stays reachable whichever page bbolt picks.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	txid := func(off int) uint64 {
		// page header (16), then magic, version, page size, flags (16), root bucket (16),
		// freelist page (8), high water mark (8): then the transaction id.
		return binary.LittleEndian.Uint64(b[off+16+48:])
	}
	older := 0
	if txid(0) > txid(pageSize) {
		older = pageSize
	}
	for i := older + 16; i < older+64; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db = open(t, path)
	if got, err := db.DeviceID(); err != nil || got != id {
		t.Errorf("DeviceID = %q, %v; want %q", got, err, id)
	}
	if got := allCalls(t, db); len(got) != 1 || got[0].id != "c1" {
		t.Errorf("Calls = %v, want c1", got)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	first := open(t, path)
	db, err := store.Open(path)
	if err == nil {
		db.Close()
		t.Fatal("second Open succeeded while the first is open")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("second Open: %v; want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("second Open: %q does not name the file", err)
	}
	// The first one is unharmed, and once it closes the file opens again.
	if _, err := first.DeviceID(); err != nil {
		t.Errorf("first database after the refused Open: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, path)
}

func TestOpenFutureSchema(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema []byte
	}{
		{"newer", []byte{2}},
		{"longer", []byte{1, 0}},
		{"empty", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Update(func(tx *bolt.Tx) error {
				meta, err := tx.CreateBucket([]byte("meta"))
				if err != nil {
					return err
				}
				return meta.Put([]byte("schema"), tc.schema)
			}); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}

			db, err := store.Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open of a database with an unknown schema succeeded")
			}
			if !errors.Is(err, store.ErrSchema) {
				t.Errorf("Open: %v; want ErrSchema", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Open: %q does not name the file", err)
			}
			// Nothing was written: no device id was made up, the schema is as it was, and the
			// lock was released (checkFile would time out otherwise).
			checkFile(t, path)
			if v := rawGet(t, path, "meta", "device_id"); v != nil {
				t.Errorf("refused Open wrote a device id %q", v)
			}
			if v := rawGet(t, path, "meta", "schema"); !bytes.Equal(v, tc.schema) {
				t.Errorf("schema = %v after the refused Open, want %v", v, tc.schema)
			}
		})
	}
}

func TestOpenUnreadablePath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
	}{
		{"directory", dir},
		{"missing parent", filepath.Join(dir, "missing", "state.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := store.Open(tc.path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("Open: %q does not name %s", err, tc.path)
			}
			if errors.Is(err, store.ErrDamaged) || errors.Is(err, store.ErrLocked) || errors.Is(err, store.ErrSchema) {
				t.Errorf("Open: %v; want none of the store's sentinels", err)
			}
		})
	}
}

// The firmware's state and an install's progress survive a reopen, and nil removes progress.
func TestFirmwareState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := db.Firmware(); err != nil || b != nil {
		t.Fatalf("new database: %q %v", b, err)
	}
	if err := db.SetFirmware([]byte(`{"committed":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFirmwareProgress([]byte(`{"next_block":7}`)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = store.Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, _ := db.Firmware(); string(b) != `{"committed":2}` {
		t.Fatalf("firmware %q", b)
	}
	if b, _ := db.FirmwareProgress(); string(b) != `{"next_block":7}` {
		t.Fatalf("progress %q", b)
	}
	if err := db.SetFirmwareProgress(nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := db.FirmwareProgress(); b != nil {
		t.Fatalf("progress after removal %q", b)
	}
}
