package audio

import (
	"fmt"
	"testing"
	"time"
)

// counter is a finite Source whose frames say which source and which frame they are.
type counter struct {
	tag, n, left int
}

func (c *counter) Next(f *Frame) bool {
	if c.left == 0 {
		return false
	}
	c.left--
	f[0], f[1] = int16(c.tag), int16(c.n)
	c.n++
	return true
}

// drain plays src to its end, at most limit frames, and returns the first two samples of
// each frame.
func drain(t *testing.T, src Source, limit int) [][2]int16 {
	t.Helper()
	var out [][2]int16
	var f Frame
	for src.Next(&f) {
		if out = append(out, [2]int16{f[0], f[1]}); len(out) > limit {
			t.Fatalf("more than %d frames", limit)
		}
	}
	return out
}

func frames(tagged ...[3]int) [][2]int16 { // {tag, first, count}
	var out [][2]int16
	for _, r := range tagged {
		for i := range r[2] {
			out = append(out, [2]int16{int16(r[0]), int16(r[1] + i)})
		}
	}
	return out
}

func TestSourceContract(t *testing.T) {
	clip := loadTestPrompts(t).Clip(PromptWarning60, English)
	onceThenNil := func() func() Source {
		n := 0
		return func() Source {
			if n++; n > 2 {
				return nil
			}
			return &counter{left: 3}
		}
	}
	for _, tc := range []struct {
		name   string
		src    Source
		frames int
	}{
		{"clip", clip.Source(), clip.Frames()},
		{"silence", Silence(100 * time.Millisecond), 5},
		{"zero silence", Silence(0), 0},
		{"empty concat", Concat(), 0},
		{"concat", Concat(Silence(40*time.Millisecond), nil, clip.Source(), Silence(0)), 2 + clip.Frames()},
		{"loop until nil", Loop(onceThenNil()), 6},
		{"loop of nothing", Loop(func() Source { return Silence(0) }), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Frame
			n := 0
			for tc.src.Next(&f) {
				if n++; n > tc.frames {
					t.Fatalf("more than %d frames", tc.frames)
				}
			}
			if n != tc.frames {
				t.Fatalf("%d frames, want %d", n, tc.frames)
			}
			for i := range f {
				f[i] = int16(i*7 - 500)
			}
			before := f
			for range 3 {
				if tc.src.Next(&f) {
					t.Fatal("Next returned true after false")
				}
				if f != before {
					t.Fatal("Next changed the frame after the end")
				}
			}
		})
	}
}

func TestSilenceFrames(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {time.Nanosecond, 1}, {FrameDuration, 1}, {FrameDuration + 1, 2},
		{time.Second, 50}, {6 * time.Second, 300},
	} {
		t.Run(fmt.Sprint(tc.d), func(t *testing.T) {
			src := Silence(tc.d)
			var f Frame
			n := 0
			for f[3] = 1; src.Next(&f); f[3] = 1 {
				if f != (Frame{}) {
					t.Fatal("frame not silent")
				}
				n++
			}
			if n != tc.want {
				t.Errorf("%d frames, want %d", n, tc.want)
			}
		})
	}
}

func TestConcatOrder(t *testing.T) {
	got := drain(t, Concat(&counter{tag: 1, left: 2}, &counter{tag: 2}, nil, &counter{tag: 3, left: 3}), 10)
	if want := frames([3]int{1, 0, 2}, [3]int{3, 0, 3}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Concat keeps its own list: changing the caller's slice afterwards changes nothing.
	srcs := []Source{&counter{tag: 1, left: 1}, &counter{tag: 2, left: 1}}
	c := Concat(srcs...)
	srcs[1] = &counter{tag: 9, left: 1}
	if got := drain(t, c, 10); fmt.Sprint(got) != fmt.Sprint(frames([3]int{1, 0, 1}, [3]int{2, 0, 1})) {
		t.Errorf("got %v after changing the caller's slice", got)
	}
}

func TestLoopRestarts(t *testing.T) {
	made := 0
	next := func() Source {
		made++
		if made > 3 {
			return nil
		}
		return &counter{tag: made, left: 2}
	}
	got := drain(t, Loop(next), 10)
	if want := frames([3]int{1, 0, 2}, [3]int{2, 0, 2}, [3]int{3, 0, 2}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}

	// A looped clip repeats it exactly, with no gap, which is what the simulated far end does.
	clip := loadTestPrompts(t).Clip(PromptSimFarEnd, English)
	loop := Loop(clip.Source)
	var once []Frame
	var f Frame
	for src := clip.Source(); src.Next(&f); {
		once = append(once, f)
	}
	for round := range 3 {
		for i, want := range once {
			if !loop.Next(&f) || f != want {
				t.Fatalf("round %d frame %d differs", round, i)
			}
		}
	}
}

func TestSourcesDoNotAllocatePerFrame(t *testing.T) {
	clip := loadTestPrompts(t).Clip(PromptNoticeCallee, Spanish)
	for _, tc := range []struct {
		name string
		src  Source
	}{
		{"clip", clip.Source()},
		{"tone", Tone(0.3, 350, 440)},
		{"ringback", Ringback()},
		{"silence", Silence(time.Hour)},
		{"concat", Concat(Silence(time.Hour))},
		{"loop", Loop(func() Source { return Silence(time.Hour) })},
	} {
		var f Frame
		tc.src.Next(&f) // a loop makes its first source here
		if a := testing.AllocsPerRun(200, func() { tc.src.Next(&f) }); a != 0 {
			t.Errorf("%s: %v allocations per frame", tc.name, a)
		}
	}
}
