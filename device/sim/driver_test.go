package sim_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device/sim"
)

type fakeCallee struct{ did []string }

func (c *fakeCallee) Do(action string) error {
	c.did = append(c.did, action)
	if action == "hangup" {
		return errors.New("no call in the right state")
	}
	return nil
}

// On the virtual clock a script moves the phone exactly: one frame after each action, the
// frames of each wait, none for a bad line, help or a callee command the called party
// refuses; quit ends the run.
func TestDriverVirtual(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		frames       int
		stderr       string // part of what the person at the terminal reads; "" for nothing
		offHook      bool
		callee       []string
	}{
		{name: "actions", script: "offhook\npress 12#\n", frames: 2, offHook: true},
		{name: "wait", script: "offhook\nwait 1s\nonhook\n", frames: 1 + 50 + 1},
		{name: "quit ends it", script: "wait 100ms\nquit\nwait 1s\n", frames: 5},
		{name: "bad line", script: "offhok\nwait 20ms\n", frames: 1, stderr: "line 1: "},
		{name: "help", script: "help\n", frames: 0, stderr: "commands:"},
		{name: "callee", script: "callee answer\ncallee hangup\n", frames: 2, stderr: "line 2: no call", callee: []string{"answer", "hangup"}},
		{name: "bad key", script: "press x\n", frames: 1, stderr: "line 1: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			board := sim.New(sim.Options{Mic: audio.Tone(0.1, 440)})
			callee := &fakeCallee{}
			var stderr strings.Builder
			d := sim.NewDriver(sim.DriverOptions{Board: board, Callee: callee, Virtual: true, Stderr: &stderr})
			var frames []time.Time
			err := d.Run(context.Background(), strings.NewReader(tc.script), func(now time.Time) { frames = append(frames, now) })
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != tc.frames {
				t.Fatalf("%d frames, want %d", len(frames), tc.frames)
			}
			for i, f := range frames {
				if want := sim.VirtualEpoch.Add(time.Duration(i+1) * audio.FrameDuration); !f.Equal(want) {
					t.Fatalf("frame %d at %s, want %s", i, f, want)
				}
			}
			if tc.frames > 0 && !d.Now().Equal(frames[len(frames)-1]) {
				t.Errorf("Now %s, want the last frame's %s", d.Now(), frames[len(frames)-1])
			}
			if tc.stderr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if board.OffHook() != tc.offHook {
				t.Errorf("off hook %v", board.OffHook())
			}
			if strings.Join(callee.did, ",") != strings.Join(tc.callee, ",") {
				t.Errorf("callee did %v, want %v", callee.did, tc.callee)
			}
		})
	}
}

// Without a called party to command, a callee line says so and changes nothing.
func TestDriverNoCallee(t *testing.T) {
	var stderr strings.Builder
	d := sim.NewDriver(sim.DriverOptions{Board: sim.New(sim.Options{}), Virtual: true, Stderr: &stderr})
	n := 0
	if err := d.Run(context.Background(), strings.NewReader("callee answer\n"), func(time.Time) { n++ }); err != nil {
		t.Fatal(err)
	}
	if n != 0 || !strings.Contains(stderr.String(), "there is no called party here") {
		t.Fatalf("%d frames, stderr %q", n, stderr.String())
	}
}

// TestDriverHookTwice: lifting a handset that is already up, or putting down one that is
// down, changes nothing, and the console says so rather than nothing at all.
func TestDriverHookTwice(t *testing.T) {
	var stderr strings.Builder
	b := sim.New(sim.Options{})
	d := sim.NewDriver(sim.DriverOptions{Board: b, Virtual: true, Stderr: &stderr})
	if err := d.Run(context.Background(), strings.NewReader("onhook\nofFhook\noffhook\n"), func(time.Time) {}); err != nil {
		t.Fatal(err)
	}
	want := "line 1: the handset is already on-hook\nline 3: the handset is already off-hook\n"
	if stderr.String() != want || !b.OffHook() {
		t.Fatalf("stderr %q, want %q; off-hook %v", stderr.String(), want, b.OffHook())
	}
}
