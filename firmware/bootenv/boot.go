package bootenv

import (
	"fmt"
	"strconv"
)

// The variables of the boot logic, shared with dist/boot.cmd; the package doc says what each
// means.
const (
	varBootSlot = "boot_slot"
	varGoodSlot = "good_slot"
	varTrial    = "upgrade_available"
	varCount    = "bootcount"
	varLimit    = "bootlimit"
	varFailed   = "failed_slot"
)

// The two slots, as the variables name them.
const (
	SlotA = "a"
	SlotB = "b"
)

// defaultLimit is the trial boots allowed when bootlimit is unset.
const defaultLimit = 3

// Decision is what one boot does, as dist/boot.cmd decides it.
type Decision struct {
	Slot     string   // the slot that boots: SlotA or SlotB
	Trial    bool     // Slot boots on trial, not yet committed
	Count    uint64   // on trial: the boots counted, this one included
	FellBack bool     // the count passed the limit: Slot is the good slot again
	Failed   string   // when FellBack: the slot given up on
	Save     []Change // variables to write before booting, in order; none off trial
}

// Change is one variable that a boot sets.
type Change struct{ Name, Value string }

// Decide is the boot script's logic: given the environment's variables (get, as Env.Get), which
// slot boots and what is written first. It is pure, so that the simulated phone and the tests
// run exactly what a real board's U-Boot runs. On trial, Save holds every variable the script
// has set by the time it runs saveenv, defaults included, since saveenv writes them all.
func Decide(get func(name string) (string, bool)) Decision {
	val := func(name string) string { v, _ := get(name); return v }
	good := val(varGoodSlot)
	if !validSlot(good) {
		good = SlotA
	}
	slot := val(varBootSlot)
	if !validSlot(slot) {
		slot = good
	}
	if val(varTrial) != "1" {
		return Decision{Slot: slot}
	}
	limit := val(varLimit)
	if limit == "" {
		limit = strconv.Itoa(defaultLimit)
	}
	count := ubootHex(val(varCount)) + 1
	d := Decision{Slot: slot, Trial: true, Count: count}
	d.Save = []Change{
		{varGoodSlot, good}, {varBootSlot, slot}, {varLimit, limit},
		{varCount, strconv.FormatUint(count, 16)},
	}
	if count > ubootHex(limit) {
		d = Decision{Slot: good, Count: count, FellBack: true, Failed: slot, Save: append(d.Save,
			Change{varFailed, slot}, Change{varBootSlot, good}, Change{varTrial, "0"})}
	}
	return d
}

// ubootHex reads a number as U-Boot's setexpr and itest do (simple_strtoul, base 16): an
// optional 0x, then hexadecimal digits up to the first other byte; none is 0.
func ubootHex(s string) uint64 {
	if len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		d, err := strconv.ParseUint(s[i:i+1], 16, 8)
		if err != nil {
			break
		}
		n = n<<4 | d
	}
	return n
}

func validSlot(s string) bool { return s == SlotA || s == SlotB }

// Boot runs Decide on e and saves what it says before returning, as the boot script does
// before it loads the kernel: the simulated phone's start-up step in place of U-Boot.
func Boot(e *Env) (Decision, error) {
	d := Decide(e.Get)
	if len(d.Save) == 0 {
		return d, nil
	}
	if err := e.apply(d.Save); err != nil {
		return d, fmt.Errorf("bootenv: boot: %w", err)
	}
	return d, nil
}

// MarkTrial puts slot, freshly written and verified, on trial: the next boots start it, at
// most bootlimit times, until Commit. It refuses the good slot, which would leave no slot to
// fall back to.
func MarkTrial(e *Env, slot string) error {
	good, _ := e.Get(varGoodSlot)
	if d := Decide(e.Get); !validSlot(good) && !d.Trial {
		// No good slot recorded (a board's first update): the one booting now is good, and it
		// is written down, or the fallback would be the default, slot a, whatever runs.
		good = d.Slot
	} else if !validSlot(good) {
		good = SlotA
	}
	if !validSlot(slot) || slot == good {
		return fmt.Errorf("%w: trial of slot %q, the good slot being %q", ErrSlot, slot, good)
	}
	return e.apply([]Change{{varGoodSlot, good}, {varBootSlot, slot}, {varCount, "0"}, {varTrial, "1"}, {varFailed, ""}})
}

// Commit makes slot, the one running and found healthy, the good slot and ends any trial. It
// writes nothing when that is already so, since the agent commits at every start.
func Commit(e *Env, slot string) error {
	if !validSlot(slot) {
		return fmt.Errorf("%w: commit of slot %q", ErrSlot, slot)
	}
	return e.apply([]Change{{varGoodSlot, slot}, {varBootSlot, slot}, {varTrial, "0"}, {varCount, "0"}, {varFailed, ""}})
}

// apply sets the changes (an empty value unsets) and saves, unless nothing changed.
func (e *Env) apply(cs []Change) error {
	changed := false
	for _, c := range cs {
		old, ok := e.Get(c.Name)
		switch {
		case c.Value == "" && ok:
			e.Unset(c.Name)
		case c.Value != "" && (!ok || old != c.Value):
			if err := e.Set(c.Name, c.Value); err != nil {
				return err
			}
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return e.Save()
}
