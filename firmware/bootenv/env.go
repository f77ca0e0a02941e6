package bootenv

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
)

// Env is the environment as read from its device, changed in memory by Set and Unset and
// written back by Save.
type Env struct {
	cfg     Config
	devs    []*device
	vars    []variable // sorted by name
	current int        // the copy in use; -1 when none was valid
	flag    byte       // the flag of the copy in use
}

// Open reads the environment that cfg describes. It returns ErrNoValidCopy, with each copy's
// fault, when no copy is valid.
func Open(cfg Config) (*Env, error) {
	e, faults, err := open(cfg)
	if err != nil {
		return nil, err
	}
	if e.current < 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoValidCopy, errors.Join(faults...))
	}
	return e, nil
}

// OpenOrDefault is Open for a caller that would rather boot with defaults than not at all, as
// U-Boot does: where no copy is valid, or a file is shorter than the environment (a file-backed
// environment that is new), it returns defaults instead of ErrNoValidCopy. Nothing is written
// until Save.
func OpenOrDefault(cfg Config, defaults map[string]string) (*Env, error) {
	e, _, err := open(cfg)
	if err != nil {
		return nil, err
	}
	if e.current >= 0 {
		return e, nil
	}
	for name, value := range defaults {
		if err := e.Set(name, value); err != nil {
			return nil, fmt.Errorf("default: %w", err)
		}
	}
	return e, nil
}

// open reads every copy and picks the one in use; faults says why each invalid copy is.
func open(cfg Config) (*Env, []error, error) {
	if err := cfg.check(); err != nil {
		return nil, nil, err
	}
	e := &Env{cfg: cfg, current: -1}
	redundant := cfg.Redundant()
	size := cfg.Copies[0].Size
	buf := make([]byte, size)
	var (
		faults []error
		flags  [2]byte
		vars   [2][]variable
		valid  [2]bool
	)
	for i, loc := range cfg.Copies {
		d, err := openDevice(loc, redundant)
		if err != nil {
			return nil, nil, fmt.Errorf("bootenv: copy %d: %w", i, err)
		}
		e.devs = append(e.devs, d)
		if err := d.read(buf); err != nil {
			if !errors.Is(err, errShort) {
				return nil, nil, fmt.Errorf("bootenv: copy %d: %w", i, err)
			}
			faults = append(faults, fmt.Errorf("copy %d: %w", i, err))
			continue
		}
		flags[i], vars[i], err = decodeCopy(buf, redundant)
		if err != nil {
			faults = append(faults, fmt.Errorf("copy %d (%s at %#x): %w", i, loc.Path, d.offset, err))
			continue
		}
		valid[i] = true
	}
	switch {
	case valid[0] && valid[1]:
		e.current = newer(flags[0], flags[1])
	case valid[0]:
		e.current = 0
	case valid[1]:
		e.current = 1
	default:
		return e, faults, nil
	}
	e.vars, e.flag = vars[e.current], flags[e.current]
	return e, faults, nil
}

// Get returns a variable's value and whether it is set.
func (e *Env) Get(name string) (string, bool) {
	i, ok := e.find(name)
	if !ok {
		return "", false
	}
	return e.vars[i].value, true
}

// Set sets a variable, in memory until Save. It returns ErrBadName for a name U-Boot could not
// read back, and ErrTooLarge when the environment would no longer fit its size.
func (e *Env) Set(name, value string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") || strings.ContainsRune(value, 0) {
		return fmt.Errorf("%w: %q=%q", ErrBadName, name, value)
	}
	i, ok := e.find(name)
	need := encodedLen(e.vars) + len(name) + len(value) + 2
	if ok {
		need = encodedLen(e.vars) - len(e.vars[i].value) + len(value)
	}
	if room := e.cfg.Copies[0].Size - headerSize(e.cfg.Redundant()); need > room {
		return fmt.Errorf("%w: with %s the variables take %d bytes, room for %d", ErrTooLarge, name, need, room)
	}
	if ok {
		e.vars[i].value = value
	} else {
		e.vars = slices.Insert(e.vars, i, variable{name, value})
	}
	return nil
}

// Unset removes a variable, in memory until Save; removing one that is not set does nothing.
func (e *Env) Unset(name string) {
	if i, ok := e.find(name); ok {
		e.vars = slices.Delete(e.vars, i, i+1)
	}
}

// All yields every variable, sorted by name.
func (e *Env) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, v := range e.vars {
			if !yield(v.name, v.value) {
				return
			}
		}
	}
}

func (e *Env) find(name string) (int, bool) {
	return slices.BinarySearchFunc(e.vars, name, func(v variable, n string) int { return strings.Compare(v.name, n) })
}

// Save writes the environment and syncs it. A redundant environment is written to the copy not
// in use, with the next flag, so that the copy in use stays valid until the new one is whole;
// only then does the new copy take over. A single copy is rewritten in place.
func (e *Env) Save() error {
	redundant := e.cfg.Redundant()
	target, flag := 0, byte(0)
	if redundant {
		target, flag = 1-e.current, e.flag+1
		if e.current < 0 {
			target, flag = 0, 1
		}
	}
	img := make([]byte, e.cfg.Copies[0].Size)
	if err := encodeCopy(img, e.vars, redundant, flag); err != nil {
		return err
	}
	if err := e.devs[target].write(img); err != nil {
		return fmt.Errorf("bootenv: save copy %d: %w", target, err)
	}
	e.current, e.flag = target, flag
	return nil
}
