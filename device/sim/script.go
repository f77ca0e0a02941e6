package sim

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Op is what a command does.
type Op int

// The commands of the simulated phone.
const (
	// Nothing: a blank line or a comment.
	Nothing Op = iota
	OffHook
	OnHook
	Press
	Wait
	Callee
	Help
	Quit
)

// CalleeActions are the things the simulated called party can be told to do.
var CalleeActions = []string{"answer", "accept", "decline", "busy", "noanswer", "hangup"}

// MaxWait bounds one wait so that a typo ("wait 10000h") cannot hang a script.
const MaxWait = 24 * time.Hour

// Command is one parsed line.
type Command struct {
	Op     Op
	Keys   string        // Press
	Wait   time.Duration // Wait
	Action string        // Callee
}

// ErrUnknown is returned (wrapped) for a line the phone does not understand.
var ErrUnknown = errors.New("unknown command")

// Usage lists the vocabulary, for `help` and for error messages.
const Usage = `commands:
  offhook                 lift the handset
  onhook                  hang up
  press <keys>            press keys: 0-9 * # A-D (e.g. press 1001#)
  wait <duration>         let time pass (e.g. wait 2s, wait 1m30s)
  callee <action>         the called party: answer, accept, decline, busy, noanswer, hangup
  help                    this list
  quit                    hang up and stop the phone
  # ...                   a comment (a whole line)`

// ParseCommand reads one line of the simulated phone's vocabulary.
func ParseCommand(line string) (Command, error) {
	// Only whole lines are comments: '#' is also a key.
	if strings.HasPrefix(strings.TrimSpace(line), "#") {
		return Command{Op: Nothing}, nil
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return Command{Op: Nothing}, nil
	}
	word, args := strings.ToLower(fields[0]), fields[1:]
	noArgs := func(c Command) (Command, error) {
		if len(args) != 0 {
			return Command{}, fmt.Errorf("%s takes no arguments", word)
		}
		return c, nil
	}
	switch word {
	case "offhook":
		return noArgs(Command{Op: OffHook})
	case "onhook":
		return noArgs(Command{Op: OnHook})
	case "help", "?":
		return noArgs(Command{Op: Help})
	case "quit", "exit":
		return noArgs(Command{Op: Quit})
	case "press":
		if len(args) == 0 {
			return Command{}, fmt.Errorf("press needs keys, e.g. press 1234#")
		}
		keys := strings.Join(args, "")
		return Command{Op: Press, Keys: keys}, nil
	case "wait":
		if len(args) != 1 {
			return Command{}, fmt.Errorf("wait needs one duration, e.g. wait 2s")
		}
		d, err := time.ParseDuration(args[0])
		if err != nil {
			return Command{}, fmt.Errorf("wait: %w", err)
		}
		if d < 0 || d > MaxWait {
			return Command{}, fmt.Errorf("wait %s: want a duration from 0 to %s", args[0], MaxWait)
		}
		return Command{Op: Wait, Wait: d}, nil
	case "callee":
		if len(args) != 1 {
			return Command{}, fmt.Errorf("callee needs one action: %s", strings.Join(CalleeActions, ", "))
		}
		a := strings.ToLower(args[0])
		for _, known := range CalleeActions {
			if a == known {
				return Command{Op: Callee, Action: a}, nil
			}
		}
		return Command{}, fmt.Errorf("callee %s: %w (actions: %s)", args[0], ErrUnknown, strings.Join(CalleeActions, ", "))
	}
	return Command{}, fmt.Errorf("%q: %w; type help for the list", fields[0], ErrUnknown)
}
