// Package keypad scans the wall phone's matrix keypad over GPIO and turns what the wires say
// into key presses for the agent (device.Keypad).
//
// It keeps the keypad's side of promise 1: the number checked against the registry is the
// number the caller pressed, because every press becomes exactly one event, in the order the
// keys went down. A contact that bounces, a key held down, or one that sticks never adds a
// digit, and a press that did not fit in the queue is counted (Stats.Dropped) rather than
// lost silently. Keys are PINs and dialed numbers, so the package never logs which key was
// pressed; only a stuck key is named, because a technician has to find it.
//
// # Scanning
//
// Rows are outputs, all High at rest; columns are inputs with pull-ups. One scan drives each
// row Low in turn, reads every column (Low means the key at that row and column is down), and
// drives the row High again before the next one goes Low, so that no column is ever read with
// two rows Low (it could not tell which row the key was on). A key counts as down or up only
// after it has read the same for Config.Debounce; the press is the debounced down edge.
//
// # Ghosting
//
// A matrix without a diode per key cannot tell every combination apart. Hold three keys on
// three corners of a rectangle, say 1, 3 and 4 on a 4x3 pad: when 4's row is driven Low, it
// reaches 3's column through 4, 1 and 3, so 6, the fourth corner, reads as down as well.
// That happens where an undriven row can be pulled Low (open-drain rows, or a Low driver
// stronger than the High one). Where rows are pushed High, as here, the same paths instead
// join a Low row to a High one: any two keys held in one column make that column read
// whichever driver wins, so either key may be missed or flicker, and series resistors on the
// rows are what keeps the pins safe. The scanner does not try to detect or mask any of
// this: a caller presses one key at a time, and a board that must do better fits diodes.
package keypad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device"
)

// Defaults for the zero values of Config.
const (
	defaultScanInterval = 5 * time.Millisecond
	defaultDebounce     = 20 * time.Millisecond
	defaultStuckAfter   = 10 * time.Second
	defaultQueueSize    = 32
)

// ErrConfig is wrapped by every error New returns for a Config that cannot work (as opposed to
// a pin that failed while being set up).
var ErrConfig = errors.New("keypad: invalid config")

// Layout is what key sits at each crossing of the matrix: Layout[row][col].
type Layout [][]device.Key

// Layout4x3 is the common telephone keypad: 1 2 3 / 4 5 6 / 7 8 9 / * 0 #.
func Layout4x3() Layout {
	return Layout{
		{'1', '2', '3'},
		{'4', '5', '6'},
		{'7', '8', '9'},
		{'*', '0', '#'},
	}
}

// Layout4x4 is the telephone keypad with a fourth column A–D: 1 2 3 A / 4 5 6 B / 7 8 9 C /
// * 0 # D.
func Layout4x4() Layout {
	return Layout{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
}

// Config describes a keypad. Zero durations and sizes take the defaults given.
type Config struct {
	// Rows are driven Low one at a time while scanning, and High otherwise (New drives them
	// all High at once).
	Rows []gpio.PinOut
	// Cols are configured by New as inputs with gpio.PullUp. Low means the key at (driven
	// row, col) is down.
	Cols []gpio.PinIn
	// Layout names the key at each crossing: len(Layout) == len(Rows), each row has
	// len(Cols) keys, and every key is a device.ValidKey that appears once.
	Layout Layout
	// ScanInterval is how often the whole matrix is scanned; default 5ms.
	ScanInterval time.Duration
	// Debounce is how long a key must read the same before it counts as down or up; default
	// 20ms. Contacts bounce for a few milliseconds when they close and open.
	Debounce time.Duration
	// StuckAfter is how long a key may stay down before it is taken as stuck; default 10s.
	// A stuck key is reported once (a Warn log and Stats.Stuck) and then ignored until it is
	// released; pressed again after that, it counts again.
	StuckAfter time.Duration
	// QueueSize is how many presses are kept until polled; default 32. Presses beyond it
	// are dropped and counted in Stats.Dropped.
	QueueSize int
	// Logger receives warnings (stuck keys, dropped presses) and the error that stops Run;
	// nil discards.
	Logger *slog.Logger
}

// Stats says what the scanner has seen, for the self-test and diagnostics.
type Stats struct {
	// Presses counts every press detected, those dropped included.
	Presses int
	// Dropped counts the presses that found the queue full.
	Dropped int
	// Stuck lists the keys that are stuck now, in the order they became stuck. A key leaves
	// the list when it is released.
	Stuck []device.Key
}

// Scanner scans a keypad matrix (Run) and queues its presses (PollKey). PollKey and Stats may
// be called from any goroutine while Run runs on its own.
type Scanner struct {
	// Immutable after New.
	rows       []gpio.PinOut
	cols       []gpio.PinIn
	keys       []device.Key // row-major: keys[r*len(cols)+c]
	every      time.Duration
	debounce   time.Duration
	stuckAfter time.Duration
	log        *slog.Logger

	running atomic.Bool // true while a Run is under way: a second one would scan the same wires

	// keys' debounce state, row-major like keys. Only the goroutine in Run touches it (running
	// makes that one goroutine), so it needs no lock and a scan takes none unless a key
	// changes.
	state []keyState

	mu      sync.Mutex   // guards queue, head, n, presses, dropped and stuck
	queue   []device.Key // ring buffer of presses not yet polled; its length is QueueSize
	head    int          // index of the oldest press in queue
	n       int          // presses in queue
	presses int
	dropped int
	stuck   []device.Key
}

// keyState is one key's debounce state.
type keyState struct {
	raw      bool      // the last reading: down
	rawSince time.Time // the scan that first saw the last reading
	down     bool      // the debounced state
	stuck    bool      // down for StuckAfter and reported; no longer counts until released
}

var _ device.Keypad = (*Scanner)(nil)

// New checks cfg, sets the columns' pull-ups and drives every row High. An error wraps
// ErrConfig and names the row, column or key that is wrong, or names the pin that failed.
func New(cfg Config) (*Scanner, error) {
	if err := check(&cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s := &Scanner{
		rows:       slices.Clone(cfg.Rows),
		cols:       slices.Clone(cfg.Cols),
		every:      cfg.ScanInterval,
		debounce:   cfg.Debounce,
		stuckAfter: cfg.StuckAfter,
		log:        cfg.Logger,
		state:      make([]keyState, len(cfg.Rows)*len(cfg.Cols)),
		queue:      make([]device.Key, cfg.QueueSize),
	}
	for _, row := range cfg.Layout {
		s.keys = append(s.keys, row...)
	}
	// Rows first: a row left Low from before boot would make its keys look pressed, and two
	// Low rows would short through any column whose keys are held.
	for r, p := range s.rows {
		if err := p.Out(gpio.High); err != nil {
			return nil, fmt.Errorf("keypad: row %d: drive High: %w", r, err)
		}
	}
	for c, p := range s.cols {
		if err := p.In(gpio.PullUp, gpio.NoEdge); err != nil {
			return nil, fmt.Errorf("keypad: col %d: set pull-up: %w", c, err)
		}
	}
	return s, nil
}

// check validates cfg and fills in its defaults.
func check(cfg *Config) error {
	if len(cfg.Rows) == 0 {
		return errors.New("no rows")
	}
	if len(cfg.Cols) == 0 {
		return errors.New("no columns")
	}
	for r, p := range cfg.Rows {
		if p == nil {
			return fmt.Errorf("row %d: no pin", r)
		}
	}
	for c, p := range cfg.Cols {
		if p == nil {
			return fmt.Errorf("col %d: no pin", c)
		}
	}
	if len(cfg.Layout) != len(cfg.Rows) {
		return fmt.Errorf("layout has %d rows, but there are %d row pins", len(cfg.Layout), len(cfg.Rows))
	}
	seen := make(map[device.Key][2]int)
	for r, row := range cfg.Layout {
		if len(row) != len(cfg.Cols) {
			return fmt.Errorf("layout row %d has %d keys, but there are %d column pins", r, len(row), len(cfg.Cols))
		}
		for c, k := range row {
			if !device.ValidKey(k) {
				return fmt.Errorf("layout row %d col %d: %q is not a keypad key (0-9, *, #, A-D)", r, c, rune(k))
			}
			if p, dup := seen[k]; dup {
				return fmt.Errorf("layout row %d col %d: key %q is already at row %d col %d", r, c, rune(k), p[0], p[1])
			}
			seen[k] = [2]int{r, c}
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ScanInterval", &cfg.ScanInterval, defaultScanInterval},
		{"Debounce", &cfg.Debounce, defaultDebounce},
		{"StuckAfter", &cfg.StuckAfter, defaultStuckAfter},
	} {
		if *d.v < 0 {
			return fmt.Errorf("%s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.StuckAfter <= cfg.Debounce {
		// Otherwise every press would be stuck before it counted.
		return fmt.Errorf("StuckAfter %v must be longer than Debounce %v", cfg.StuckAfter, cfg.Debounce)
	}
	if cfg.QueueSize < 0 {
		return fmt.Errorf("QueueSize %d is negative", cfg.QueueSize)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Run scans the matrix every ScanInterval until ctx is done, then returns nil. If a pin
// fails, it logs the error and returns it wrapped with the row ("keypad: row 2: drive Low:
// ..."). Run may be called again after it returns, and carries on from what it last saw;
// calling it while another Run is under way is an error.
func (s *Scanner) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("keypad: Run is already running")
	}
	defer s.running.Store(false)
	err := s.run(ctx)
	if err != nil {
		s.log.Error("keypad scan stopped", "err", err)
	}
	return err
}

func (s *Scanner) run(ctx context.Context) error {
	// A row may have been left Low since New (by a Run that failed half way through a scan,
	// or by anything else that had the pin), and it would be read together with every row
	// scanned before it.
	for r, row := range s.rows {
		if err := row.Out(gpio.High); err != nil {
			return fmt.Errorf("keypad: row %d: drive High: %w", r, err)
		}
	}
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		if err := s.scan(time.Now()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scan reads the whole matrix once, at time now, and updates every key.
func (s *Scanner) scan(now time.Time) error {
	ncol := len(s.cols)
	for r, row := range s.rows {
		if err := row.Out(gpio.Low); err != nil {
			return fmt.Errorf("keypad: row %d: drive Low: %w", r, err)
		}
		st := s.state[r*ncol : (r+1)*ncol]
		for c, col := range s.cols {
			if down := col.Read() == gpio.Low; down != st[c].raw {
				st[c].raw, st[c].rawSince = down, now
			}
		}
		if err := row.Out(gpio.High); err != nil {
			return fmt.Errorf("keypad: row %d: drive High: %w", r, err)
		}
	}
	// Row-major, so that keys that went down together are queued in row-major order.
	for i := range s.state {
		s.update(i, now)
	}
	return nil
}

// update moves key i's debounced state on to now.
func (s *Scanner) update(i int, now time.Time) {
	k := &s.state[i]
	if k.raw == k.down && (!k.down || k.stuck) {
		return // settled, and not a held key that might become stuck: the usual case
	}
	held := now.Sub(k.rawSince)
	if k.raw != k.down && held >= s.debounce {
		k.down = k.raw
		if k.down {
			s.press(s.keys[i])
		} else if k.stuck {
			k.stuck = false
			s.unstick(s.keys[i])
		}
	}
	// held is how long the key has read down: if it reads up while still counted down, held
	// is the time since the release began, shorter than Debounce and so than StuckAfter.
	if k.down && !k.stuck && held >= s.stuckAfter {
		k.stuck = true
		s.markStuck(s.keys[i], held)
	}
}

func (s *Scanner) press(k device.Key) {
	s.mu.Lock()
	s.presses++
	full := s.n == len(s.queue)
	if full {
		s.dropped++
	} else {
		s.queue[(s.head+s.n)%len(s.queue)] = k
		s.n++
	}
	dropped := s.dropped
	s.mu.Unlock()
	if full {
		// No key in the message: presses are PINs and numbers.
		s.log.Warn("keypad queue full: press dropped", "queue", len(s.queue), "dropped", dropped)
	}
}

func (s *Scanner) markStuck(k device.Key, held time.Duration) {
	s.mu.Lock()
	s.stuck = append(s.stuck, k)
	s.mu.Unlock()
	s.log.Warn("keypad key stuck", "key", string(k), "held", held)
}

func (s *Scanner) unstick(k device.Key) {
	s.mu.Lock()
	if i := slices.Index(s.stuck, k); i >= 0 {
		s.stuck = slices.Delete(s.stuck, i, i+1)
	}
	s.mu.Unlock()
	s.log.Info("keypad stuck key released", "key", string(k))
}

// PollKey returns the oldest press not yet returned, or false if there is none. It implements
// device.Keypad.
func (s *Scanner) PollKey() (device.Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return 0, false
	}
	k := s.queue[s.head]
	s.head = (s.head + 1) % len(s.queue)
	s.n--
	return k, true
}

// Stats returns what the scanner has seen so far.
func (s *Scanner) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Presses: s.presses, Dropped: s.dropped, Stuck: slices.Clone(s.stuck)}
}
