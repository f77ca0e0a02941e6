package audio

import (
	"slices"
	"time"
)

// Silence returns a Source of d of silence, rounded up to whole frames.
func Silence(d time.Duration) Source {
	n := 0
	if d > 0 {
		n = int((d + FrameDuration - 1) / FrameDuration)
	}
	return &silence{left: n}
}

type silence struct{ left int }

func (s *silence) Next(f *Frame) bool {
	if s.left <= 0 {
		return false
	}
	s.left--
	f.Silence()
	return true
}

// Concat returns a Source that plays each of srcs to its end in turn, skipping nil ones: a
// prompt sequence such as "PIN rejected" then "enter ID".
func Concat(srcs ...Source) Source {
	return &concat{srcs: slices.Clone(srcs)}
}

type concat struct {
	srcs []Source // the current one first; finished ones are dropped
}

func (c *concat) Next(f *Frame) bool {
	for len(c.srcs) > 0 {
		if s := c.srcs[0]; s != nil && s.Next(f) {
			return true
		}
		c.srcs[0] = nil // let a finished source go
		c.srcs = c.srcs[1:]
	}
	return false
}

// Loop returns a Source that plays the sources next makes one after another, for ever:
// Loop(clip.Source) repeats a clip. It ends only when next returns nil or a source that plays
// nothing at all, since looping that would spin without yielding a frame.
func Loop(next func() Source) Source { return &loop{next: next} }

type loop struct {
	next func() Source // nil once the loop has ended
	cur  Source
}

func (l *loop) Next(f *Frame) bool {
	if l.next == nil {
		return false
	}
	if l.cur != nil && l.cur.Next(f) {
		return true
	}
	if l.cur = l.next(); l.cur != nil && l.cur.Next(f) {
		return true
	}
	l.next, l.cur = nil, nil
	return false
}
