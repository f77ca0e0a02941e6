package sim_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/sim"
)

type parseCase struct {
	line string
	want sim.Command
	err  error  // the sentinel, when there is one
	msg  string // part of the message of an error; "" means no error is expected unless err is set
}

func parseCases() []parseCase {
	var cases []parseCase
	ok := func(line string, c sim.Command) { cases = append(cases, parseCase{line: line, want: c}) }
	bad := func(line string, err error, msg string) {
		cases = append(cases, parseCase{line: line, err: err, msg: msg})
	}

	ok("", sim.Command{Op: sim.Nothing})
	ok("   \t ", sim.Command{Op: sim.Nothing})
	ok("# a comment", sim.Command{Op: sim.Nothing})
	ok("   # an indented comment", sim.Command{Op: sim.Nothing})
	ok("#", sim.Command{Op: sim.Nothing})
	ok("#press 1", sim.Command{Op: sim.Nothing})

	ok("offhook", sim.Command{Op: sim.OffHook})
	ok("  OffHook  ", sim.Command{Op: sim.OffHook})
	ok("onhook", sim.Command{Op: sim.OnHook})
	ok("help", sim.Command{Op: sim.Help})
	ok("?", sim.Command{Op: sim.Help})
	ok("quit", sim.Command{Op: sim.Quit})
	ok("exit", sim.Command{Op: sim.Quit})
	ok("QUIT", sim.Command{Op: sim.Quit})

	ok("press 1", sim.Command{Op: sim.Press, Keys: "1"})
	ok("press 1001#", sim.Command{Op: sim.Press, Keys: "1001#"})
	ok("press 12#", sim.Command{Op: sim.Press, Keys: "12#"})
	ok("press #", sim.Command{Op: sim.Press, Keys: "#"})
	ok("press *#", sim.Command{Op: sim.Press, Keys: "*#"})
	ok("press 1 2\t3", sim.Command{Op: sim.Press, Keys: "123"})
	ok("press 12 # 34", sim.Command{Op: sim.Press, Keys: "12#34"})
	ok("press abcd", sim.Command{Op: sim.Press, Keys: "abcd"}) // the board takes a-d as A-D
	ok("PRESS 5", sim.Command{Op: sim.Press, Keys: "5"})

	ok("wait 2s", sim.Command{Op: sim.Wait, Wait: 2 * time.Second})
	ok("wait 1m30s", sim.Command{Op: sim.Wait, Wait: 90 * time.Second})
	ok("wait 20ms", sim.Command{Op: sim.Wait, Wait: 20 * time.Millisecond})
	ok("wait 0s", sim.Command{Op: sim.Wait})
	ok("wait 0", sim.Command{Op: sim.Wait})
	ok("wait 24h", sim.Command{Op: sim.Wait, Wait: sim.MaxWait})

	for _, a := range sim.CalleeActions {
		ok("callee "+a, sim.Command{Op: sim.Callee, Action: a})
		ok("Callee "+strings.ToUpper(a), sim.Command{Op: sim.Callee, Action: a})
	}

	bad("dial 5125550100", sim.ErrUnknown, "dial")
	bad("offhok", sim.ErrUnknown, "offhok")
	bad("1234", sim.ErrUnknown, "1234")
	bad("callee dance", sim.ErrUnknown, "dance")
	bad("callee answered", sim.ErrUnknown, "answered")

	bad("offhook now", nil, "no arguments")
	bad("onhook 1", nil, "no arguments")
	bad("help me", nil, "no arguments")
	bad("quit now", nil, "no arguments")
	bad("press", nil, "needs keys")
	bad("press   ", nil, "needs keys")
	bad("wait", nil, "one duration")
	bad("wait 1s 2s", nil, "one duration")
	bad("wait soon", nil, "wait")
	bad("wait 2", nil, "wait") // a number needs a unit
	bad("wait -1s", nil, "from 0")
	bad("wait 24h0m0.001s", nil, "from 0")
	bad("wait 10000h", nil, "from 0")
	bad("wait 9999999999999999h", nil, "wait")
	bad("callee", nil, "one action")
	bad("callee answer now", nil, "one action")
	return cases
}

func TestParseCommand(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.line, func(t *testing.T) {
			got, err := sim.ParseCommand(tc.line)
			if tc.err == nil && tc.msg == "" {
				if err != nil || got != tc.want {
					t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseCommand(%q) = %+v; want an error", tc.line, got)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("ParseCommand(%q): %v; want %v", tc.line, err, tc.err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseCommand(%q): %q does not say %q", tc.line, err, tc.msg)
			}
			if got != (sim.Command{}) {
				t.Errorf("ParseCommand(%q) returned %+v with its error", tc.line, got)
			}
		})
	}
}

func TestUsageNamesEveryCommand(t *testing.T) {
	for _, w := range append([]string{"offhook", "onhook", "press", "wait", "callee", "help", "quit", "#"}, sim.CalleeActions...) {
		if !strings.Contains(sim.Usage, w) {
			t.Errorf("Usage does not mention %q", w)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	cases := parseCases()
	if len(cases) == 0 {
		f.Fatal("no seeds")
	}
	for _, tc := range cases {
		f.Add(tc.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := sim.ParseCommand(line)
		if err != nil {
			if c != (sim.Command{}) {
				t.Fatalf("command %+v returned with error %v", c, err)
			}
			return
		}
		switch c.Op {
		case sim.Nothing, sim.OffHook, sim.OnHook, sim.Help, sim.Quit:
		case sim.Wait:
			if c.Wait < 0 || c.Wait > sim.MaxWait {
				t.Fatalf("wait of %v accepted", c.Wait)
			}
		case sim.Callee:
			if !slices.Contains(sim.CalleeActions, c.Action) {
				t.Fatalf("callee action %q accepted", c.Action)
			}
		case sim.Press:
			if c.Keys == "" || strings.ContainsFunc(c.Keys, func(r rune) bool { return strings.TrimSpace(string(r)) == "" }) {
				t.Fatalf("press of %q accepted", c.Keys)
			}
			b := sim.New(sim.Options{})
			err := b.Press(c.Keys)
			var got []device.Key
			for {
				k, ok := b.PollKey()
				if !ok {
					break
				}
				got = append(got, k)
			}
			switch {
			case err != nil && len(got) != 0:
				t.Fatalf("Press(%q) failed (%v) but queued %q", c.Keys, err, string(runeKeys(got)))
			case err == nil && len(got) != utf8.RuneCountInString(c.Keys):
				t.Fatalf("Press(%q) queued %d keys", c.Keys, len(got))
			case err == nil:
				for _, k := range got {
					if !device.ValidKey(k) {
						t.Fatalf("Press(%q) queued %q", c.Keys, rune(k))
					}
				}
			}
		default:
			t.Fatalf("unknown op %d", c.Op)
		}
	})
}

func runeKeys(ks []device.Key) []rune {
	out := make([]rune, len(ks))
	for i, k := range ks {
		out[i] = rune(k)
	}
	return out
}
