package keypad_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/keypad"
	"github.com/wallphone/wallphone/device/keypad/keypadtest"
)

// The tests run under synctest: time passes only when every goroutine of the test is blocked,
// so the scanner's ticker fires at exact fake instants. wait(d) lets d of fake time pass and
// then lets the scanner finish the scan due at that instant, so that a test observes each
// scan's outcome deterministically.

const (
	scanEvery = 5 * time.Millisecond  // the default ScanInterval
	debounce  = 20 * time.Millisecond // the default Debounce
)

func wait(d time.Duration) {
	time.Sleep(d) // fake time: returns once d has passed in the bubble
	synctest.Wait()
}

// logBuffer collects the scanner's log lines; the scanner writes from its goroutine.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many log lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for line := range strings.Lines(b.buf.String()) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rig is a scanner running on a fake matrix.
type rig struct {
	t    *testing.T
	m    *keypadtest.Matrix
	s    *keypad.Scanner
	logs *logBuffer
	stop func() error // cancels Run and returns what it returned
}

// start makes a scanner for layout (cfg adjusted by edit, if not nil) and runs it until the
// test ends. It returns after the first scan.
func start(t *testing.T, layout keypad.Layout, edit func(*keypad.Config)) *rig {
	t.Helper()
	m := keypadtest.New(layout)
	logs := &logBuffer{}
	cfg := keypad.Config{
		Rows:   m.Rows(),
		Cols:   m.Cols(),
		Layout: layout,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{
			Level:       slog.LevelDebug,
			ReplaceAttr: dropTime, // so that a digit in the log is not a timestamp's
		})),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := keypad.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var (
		once   sync.Once
		runErr error
	)
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		var stopped bool
		once.Do(func() {
			stopped = true
			cancel()
			runErr = <-done
		})
		// Only Run stopped here must return nil: a test that stopped it checked the result.
		if stopped && runErr != nil {
			t.Errorf("Run returned %v after cancel, want nil", runErr)
		}
		if n := m.Overlaps(); n != 0 {
			t.Errorf("%d column reads were made with two or more rows Low", n)
		}
	})
	synctest.Wait()
	return &rig{t: t, m: m, s: s, logs: logs, stop: stop}
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// tap holds k down for d, then releases it and waits until the release has settled.
func (r *rig) tap(k device.Key, d time.Duration) {
	r.m.Press(k)
	wait(d)
	r.m.Release(k)
	wait(debounce + 2*scanEvery)
}

// drain polls every queued press.
func (r *rig) drain() string {
	var got []rune
	for {
		k, ok := r.s.PollKey()
		if !ok {
			return string(got)
		}
		got = append(got, rune(k))
	}
}

func (r *rig) wantKeys(want string) {
	r.t.Helper()
	if got := r.drain(); got != want {
		r.t.Errorf("keys %q, want %q", got, want)
	}
}

func keysOf(l keypad.Layout) string {
	var s []rune
	for _, row := range l {
		for _, k := range row {
			s = append(s, rune(k))
		}
	}
	return string(s)
}

func TestEveryKeyOnce(t *testing.T) {
	for name, layout := range map[string]keypad.Layout{"4x3": keypad.Layout4x3(), "4x4": keypad.Layout4x4()} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := start(t, layout, nil)
				all := keysOf(layout)
				for _, k := range all {
					r.tap(device.Key(k), 100*time.Millisecond)
					r.wantKeys(string(k))
				}
				if st := r.s.Stats(); st.Presses != len(all) || st.Dropped != 0 || len(st.Stuck) != 0 {
					t.Errorf("Stats = %+v, want %d presses and nothing else", st, len(all))
				}
			})
		})
	}
}

func TestLayouts(t *testing.T) {
	if got := keysOf(keypad.Layout4x3()); got != "123456789*0#" {
		t.Errorf("Layout4x3 = %q", got)
	}
	if got := keysOf(keypad.Layout4x4()); got != "123A456B789C*0#D" {
		t.Errorf("Layout4x4 = %q", got)
	}
	// Each call returns a layout of its own, so that a caller may change it.
	l := keypad.Layout4x3()
	l[0][0] = 'D'
	if keypad.Layout4x3()[0][0] != '1' {
		t.Error("Layout4x3 shares its rows between calls")
	}
}

func TestPressCountsAfterExactlyDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		r.m.Press('5')
		wait(scanEvery) // the first scan that sees the key down
		for range debounce/scanEvery - 1 {
			wait(scanEvery)
			r.wantKeys("")
		}
		wait(scanEvery) // Debounce after the first scan that saw it
		r.wantKeys("5")
	})
}

func TestBounceGivesOnePress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		// Contact bounce on the way down and on the way up: each pulse is shorter than
		// Debounce but long enough for a scan or two to see it.
		bounce := []time.Duration{7, 11, 6, 13, 8, 17, 9}
		down := true
		for _, ms := range bounce {
			r.m.Set('8', down)
			wait(ms * time.Millisecond)
			down = !down
		}
		r.m.Press('8')
		wait(200 * time.Millisecond)
		down = false
		for _, ms := range bounce {
			r.m.Set('8', down)
			wait(ms * time.Millisecond)
			down = !down
		}
		r.m.Release('8')
		wait(200 * time.Millisecond)
		r.wantKeys("8")
		if st := r.s.Stats(); st.Presses != 1 {
			t.Errorf("Presses = %d, want 1", st.Presses)
		}
	})
}

func TestPressShorterThanDebounceIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		for range 5 {
			r.tap('3', debounce-scanEvery) // seen by three scans, never for Debounce
		}
		r.wantKeys("")
		if st := r.s.Stats(); st.Presses != 0 {
			t.Errorf("Presses = %d, want 0", st.Presses)
		}
	})
}

func TestHeldKeyDoesNotRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		r.m.Press('0')
		for range 50 {
			wait(100 * time.Millisecond) // 5 s in all
		}
		r.wantKeys("0")
		r.m.Release('0')
		wait(100 * time.Millisecond)
		r.wantKeys("")
		r.tap('0', 100*time.Millisecond) // the same key again is a new press
		r.wantKeys("0")
	})
}

func TestSimultaneousKeysInRowMajorOrder(t *testing.T) {
	for _, tc := range []struct {
		press string // in this order, at the same instant
		want  string
	}{
		{"91", "19"},
		{"64", "46"},   // one row
		{"82", "28"},   // one column
		{"D#A", "A#D"}, // three corners, no ghost modelled
	} {
		t.Run(tc.press, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := start(t, keypad.Layout4x4(), nil)
				for _, k := range tc.press {
					r.m.Press(device.Key(k))
				}
				wait(100 * time.Millisecond)
				for _, k := range tc.press {
					r.m.Release(device.Key(k))
				}
				wait(100 * time.Millisecond)
				r.wantKeys(tc.want)
			})
		})
	}
}

func TestOverlappingPressesInPressOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		r.m.Press('9')
		wait(50 * time.Millisecond)
		r.m.Press('1') // while 9 is still held
		wait(50 * time.Millisecond)
		r.m.Release('9')
		r.m.Release('1')
		wait(50 * time.Millisecond)
		r.wantKeys("91")
	})
}

func TestPollKeyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x4(), nil)
		const number = "5125550100#*D"
		for _, k := range number {
			r.tap(device.Key(k), 60*time.Millisecond)
		}
		r.wantKeys(number)
		if k, ok := r.s.PollKey(); ok {
			t.Errorf("PollKey on an empty queue = %q, true", k)
		}
	})
}

func TestStuckKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const stuckAfter = time.Second
		r := start(t, keypad.Layout4x3(), func(c *keypad.Config) { c.StuckAfter = stuckAfter })
		r.m.Press('5')
		wait(stuckAfter) // the first scan to see it down was one interval after the press
		r.wantKeys("5")
		if st := r.s.Stats(); len(st.Stuck) != 0 {
			t.Fatalf("stuck after %v: %v", stuckAfter, st.Stuck)
		}
		wait(scanEvery)
		if st := r.s.Stats(); !slices.Equal(st.Stuck, []device.Key{'5'}) {
			t.Fatalf("Stats.Stuck = %q, want [5]", st.Stuck)
		}
		for range 20 {
			wait(time.Second)
		}
		if st := r.s.Stats(); !slices.Equal(st.Stuck, []device.Key{'5'}) || st.Presses != 1 {
			t.Errorf("after 20 s more, Stats = %+v, want one press and 5 stuck once", st)
		}
		if n := r.logs.count("key stuck"); n != 1 || r.logs.count("key=5") != 1 {
			t.Errorf("stuck reported %d times, want once:\n%s", n, r.logs)
		}
		r.wantKeys("")

		// The rest of the keypad keeps working while 5 is stuck.
		r.tap('1', 100*time.Millisecond)
		r.wantKeys("1")

		r.m.Release('5')
		wait(100 * time.Millisecond)
		if st := r.s.Stats(); len(st.Stuck) != 0 {
			t.Errorf("released, still stuck: %v", st.Stuck)
		}
		r.tap('5', 100*time.Millisecond)
		r.wantKeys("5")
		if st := r.s.Stats(); st.Presses != 3 {
			t.Errorf("Presses = %d, want 3 (5, 1, 5)", st.Presses)
		}
	})
}

func TestNoKeyIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), func(c *keypad.Config) { c.QueueSize = 1 })
		r.tap('8', 100*time.Millisecond)
		r.tap('9', 100*time.Millisecond) // dropped: the queue holds one
		if r.logs.count("press dropped") != 1 {
			t.Fatalf("the drop was not logged:\n%s", r.logs)
		}
		if strings.ContainsAny(r.logs.String(), "89") || r.logs.count("key=") != 0 {
			t.Errorf("the log names a pressed key:\n%s", r.logs)
		}
	})
}

func TestQueueOverflowIsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), func(c *keypad.Config) { c.QueueSize = 3 })
		for _, k := range "12345" {
			r.tap(device.Key(k), 60*time.Millisecond)
		}
		if st := r.s.Stats(); st.Presses != 5 || st.Dropped != 2 {
			t.Errorf("Stats = %+v, want 5 presses, 2 dropped", st)
		}
		if n := r.logs.count("press dropped"); n != 2 {
			t.Errorf("%d drops logged, want 2", n)
		}
		r.wantKeys("123")
		// Polled, the queue takes presses again, wrapping round its ring.
		for _, k := range "678" {
			r.tap(device.Key(k), 60*time.Millisecond)
		}
		r.wantKeys("678")
		if st := r.s.Stats(); st.Presses != 8 || st.Dropped != 2 {
			t.Errorf("Stats = %+v, want 8 presses, 2 dropped", st)
		}
	})
}

func TestNewSetsUpPins(t *testing.T) {
	m := keypadtest.New(keypad.Layout4x3())
	if _, err := keypad.New(keypad.Config{Rows: m.Rows(), Cols: m.Cols(), Layout: keypad.Layout4x3()}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if l := m.Row(i).Read(); l != gpio.High {
			t.Errorf("row %d is %v after New, want High", i, l)
		}
	}
	for i := range 3 {
		if p := m.Col(i).Pull(); p != gpio.PullUp {
			t.Errorf("col %d pull is %v after New, want PullUp", i, p)
		}
	}
}

func TestNewRejects(t *testing.T) {
	m := keypadtest.New(keypad.Layout4x4())
	rows, cols := m.Rows(), m.Cols()
	good := func() keypad.Config {
		return keypad.Config{Rows: rows, Cols: cols[:3], Layout: keypad.Layout4x3()}
	}
	for _, tc := range []struct {
		name string
		edit func(*keypad.Config)
		want string
	}{
		{"no rows", func(c *keypad.Config) { c.Rows = nil }, "no rows"},
		{"no columns", func(c *keypad.Config) { c.Cols = nil }, "no columns"},
		{"nil row pin", func(c *keypad.Config) { c.Rows = []gpio.PinOut{rows[0], nil, rows[2], rows[3]} }, "row 1: no pin"},
		{"nil col pin", func(c *keypad.Config) { c.Cols = []gpio.PinIn{cols[0], cols[1], nil} }, "col 2: no pin"},
		{"too few layout rows", func(c *keypad.Config) { c.Layout = c.Layout[:3] }, "layout has 3 rows, but there are 4 row pins"},
		{"too many columns", func(c *keypad.Config) { c.Cols = cols }, "layout row 0 has 3 keys, but there are 4 column pins"},
		{"ragged layout", func(c *keypad.Config) { c.Layout[2] = c.Layout[2][:2] }, "layout row 2 has 2 keys, but there are 3 column pins"},
		{"invalid key", func(c *keypad.Config) { c.Layout[1][2] = 'x' }, `layout row 1 col 2: 'x' is not a keypad key`},
		{"zero key", func(c *keypad.Config) { c.Layout[0][0] = 0 }, `layout row 0 col 0: '\x00' is not a keypad key`},
		{"duplicate key", func(c *keypad.Config) { c.Layout[3][1] = '5' }, `layout row 3 col 1: key '5' is already at row 1 col 1`},
		{"negative interval", func(c *keypad.Config) { c.ScanInterval = -time.Millisecond }, "ScanInterval -1ms is negative"},
		{"negative debounce", func(c *keypad.Config) { c.Debounce = -time.Millisecond }, "Debounce -1ms is negative"},
		{"stuck before debounce", func(c *keypad.Config) { c.StuckAfter = 10 * time.Millisecond }, "StuckAfter 10ms must be longer than Debounce 20ms"},
		{"negative queue", func(c *keypad.Config) { c.QueueSize = -1 }, "QueueSize -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.edit(&cfg)
			s, err := keypad.New(cfg)
			if err == nil {
				t.Fatalf("New accepted it: %+v", s)
			}
			if !errors.Is(err, keypad.ErrConfig) {
				t.Errorf("error %q does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
	if _, err := keypad.New(good()); err != nil {
		t.Errorf("the good config was rejected: %v", err)
	}
}

var errPin = errors.New("gpio: pin vanished")

func TestNewReportsPinErrors(t *testing.T) {
	m := keypadtest.New(keypad.Layout4x3())
	m.Col(1).FailIn(errPin)
	_, err := keypad.New(keypad.Config{Rows: m.Rows(), Cols: m.Cols(), Layout: keypad.Layout4x3()})
	if !errors.Is(err, errPin) || errors.Is(err, keypad.ErrConfig) || !strings.HasPrefix(err.Error(), "keypad: col 1: ") {
		t.Errorf("New = %v, want the pin error wrapped as keypad: col 1: ...", err)
	}
	m.Col(1).FailIn(nil)
	m.Row(3).FailOut(errPin)
	_, err = keypad.New(keypad.Config{Rows: m.Rows(), Cols: m.Cols(), Layout: keypad.Layout4x3()})
	if !errors.Is(err, errPin) || !strings.HasPrefix(err.Error(), "keypad: row 3: ") {
		t.Errorf("New = %v, want the pin error wrapped as keypad: row 3: ...", err)
	}
}

func TestRunStopsOnPinError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		r.tap('2', 100*time.Millisecond)
		r.m.Row(2).FailOut(errPin)
		wait(scanEvery)
		err := r.stop()
		if !errors.Is(err, errPin) || !strings.HasPrefix(err.Error(), "keypad: row 2: ") {
			t.Fatalf("Run = %v, want the pin error wrapped as keypad: row 2: ...", err)
		}
		if n := r.logs.count("level=ERROR"); n != 1 || r.logs.count("pin vanished") != 1 {
			t.Errorf("the error was logged %d times, want once:\n%s", n, r.logs)
		}
		r.wantKeys("2") // what was pressed before the error is still there
	})
}

func TestRunRaisesRowsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := keypadtest.New(keypad.Layout4x3())
		s, err := keypad.New(keypad.Config{Rows: m.Rows(), Cols: m.Cols(), Layout: keypad.Layout4x3()})
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Row(3).Out(gpio.Low) // left Low by someone between New and Run
		m.Press('2')
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		wait(100 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := m.Overlaps(); n != 0 {
			t.Errorf("%d column reads with two rows Low", n)
		}
		if k, ok := s.PollKey(); k != '2' || !ok {
			t.Errorf("PollKey = %q, %v, want 2", k, ok)
		}
		if k, ok := s.PollKey(); ok {
			t.Errorf("a second key %q (a ghost of the Low row)", k)
		}
	})
}

func TestRunTwiceAtOnceIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, keypad.Layout4x3(), nil)
		// Bounded, so that a second Run that wrongly starts scanning still returns.
		bounded, stopBounded := context.WithTimeout(context.Background(), time.Second)
		defer stopBounded()
		if err := r.s.Run(bounded); err == nil {
			t.Error("a second Run while the first runs returned nil")
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		// Once the first has returned, the scanner can run again.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.s.Run(ctx) }()
		synctest.Wait()
		r.tap('4', 100*time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run again = %v", err)
		}
		r.wantKeys("4")
	})
}

func TestRunReturnsAfterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := keypadtest.New(keypad.Layout4x3())
		s, err := keypad.New(keypad.Config{Rows: m.Rows(), Cols: m.Cols(), Layout: keypad.Layout4x3()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		wait(time.Second)
		cancel()
		synctest.Wait() // Run is not blocked any more: it has returned
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel = %v, want nil", err)
			}
		default:
			t.Fatal("Run did not return after cancel")
		}
	})
}
