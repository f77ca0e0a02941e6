package siptrunk

import "github.com/wallphone/wallphone/audio"

// jitterSlots bounds what the jitter buffer holds: 8 packets, 160 ms.
const jitterSlots = 8

// jitterMaxDepth is the depth past which the buffer drops its oldest frames to catch up, so
// that a burst after a network stall does not leave the call delayed for good.
const jitterMaxDepth = 4

// jitter is the inbound jitter buffer: frames go in by RTP sequence number as packets arrive
// and come out in order, one per tick. A packet older than what was already played is
// dropped; a missing packet is played as one tick of silence, during which a packet that
// arrives out of order can still take its place. It is not safe for concurrent use (the leg holds
// a mutex around it).
type jitter struct {
	slot    [jitterSlots]audio.Frame
	seq     [jitterSlots]uint16
	full    [jitterSlots]bool
	count   int
	next    uint16 // sequence number to play next
	started bool   // next is meaningful
	waited  bool   // the last tick found a gap and waited for it
	// Counters for the call's statistics.
	late, concealed, dropped int
}

// push stores one decoded frame under its sequence number.
func (j *jitter) push(seq uint16, f *audio.Frame) {
	if !j.started {
		j.next, j.started = seq, true
	}
	d := int16(seq - j.next)
	switch {
	case d < 0:
		j.late++
		return
	case int(d) >= jitterSlots:
		// Far ahead: the far end jumped (a new stream, a long outage). Start again from here.
		j.reset()
		j.next, j.started = seq, true
	}
	i := seq % jitterSlots
	if j.full[i] && j.seq[i] == seq {
		return // a duplicate
	}
	if !j.full[i] {
		j.count++
	}
	j.slot[i], j.seq[i], j.full[i] = *f, seq, true
	for j.count > jitterMaxDepth {
		j.dropOldest()
	}
}

func (j *jitter) dropOldest() {
	i := j.next % jitterSlots
	if j.full[i] && j.seq[i] == j.next {
		j.full[i] = false
		j.count--
		j.dropped++
	}
	j.next++
}

func (j *jitter) reset() {
	j.full = [jitterSlots]bool{}
	j.count, j.waited = 0, false
}

// pop fills f with the next frame in order and reports whether it did. When nothing is
// waiting it returns false and the next packet to arrive sets the pace again, so that a pause
// in the far end's stream adds no delay.
func (j *jitter) pop(f *audio.Frame) bool {
	if !j.started {
		return false
	}
	if j.count == 0 {
		j.started, j.waited = false, false
		return false
	}
	i := j.next % jitterSlots
	if j.full[i] && j.seq[i] == j.next {
		*f = j.slot[i]
		j.full[i] = false
		j.count--
		j.next++
		j.waited = false
		return true
	}
	if !j.waited {
		// A gap: give a packet that is merely out of order one tick to arrive. The caller
		// hears silence for this tick, which stands in for the packet if it never comes.
		j.waited = true
		return false
	}
	j.waited = false
	j.next++
	j.concealed++
	return j.pop(f)
}
