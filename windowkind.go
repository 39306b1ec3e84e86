package sluice

// What differs between the kinds of windows, in one place: the windows a
// record's time falls in, and when a window closes and is purged, in Unix
// nanoseconds of stream time. The engine (enginewindow.go) keeps, closes
// and purges windows the same way for every kind; a kind whose windows
// depend on the key's other windows (sessions, sliding windows) adds its
// choice of windows to addToWindows, which finds a record's windows there.
//
// The key layout orders a key's windows by end, and the purge and close
// bounds below are bounds on the end: a kind must be able to say, for a
// stream time, below which end every window has closed (end plus grace at
// or before stream time) and below which end every window is purged.

import (
	"math"
	"time"
)

// span is a window in Unix nanoseconds.
type span struct{ start, end int64 }

func (s span) window() Window { return Window{Start: time.Unix(0, s.start), End: time.Unix(0, s.end)} }

// windowsAt appends to buf the windows of w that a record at t (Unix
// nanoseconds) belongs to, in order of end, for the kinds whose windows
// are fixed by time alone: tumbling and hopping.
func (w Windows) windowsAt(t int64, buf []span) []span {
	size, adv := int64(w.size), int64(w.advance)
	if w.kind == tumblingWindows {
		adv = size
	}
	last := floorDiv(t, adv) * adv           // the latest start at or before t
	first := floorDiv(t-size, adv)*adv + adv // the earliest start after t-size
	for s := first; s <= last; s += adv {
		buf = append(buf, span{s, s + size})
	}
	return buf
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// retention is how long after its start a window is kept, in stream time.
func (w Windows) retentionOf() time.Duration {
	if w.retention > 0 {
		return w.retention
	}
	return w.size + w.grace
}

// closesAt is the stream time at which a window that ends at end closes.
func (w Windows) closesAt(end int64) int64 { return addSat(end, int64(w.grace)) }

// purgedAt is the stream time at which a window that ends at end is
// purged: its start plus the retention.
func (w Windows) purgedAt(end int64) int64 {
	return addSat(end, int64(w.retentionOf()-w.size))
}

// purgedAtClose reports whether windows are purged as soon as they close.
func (w Windows) purgedAtClose() bool { return w.retentionOf() == w.size+w.grace }

func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

// closedBelow is the end below which every window has closed at stream
// time stream: end plus grace at or before it.
func (w Windows) closedBelow(stream int64) int64 {
	return addSat(addSat(stream, -int64(w.grace)), 1)
}

// purgedBelow is the end below which every window is purged at stream
// time stream: start plus retention at or before it.
func (w Windows) purgedBelow(stream int64) int64 {
	return addSat(addSat(stream, -int64(w.retentionOf()-w.size)), 1)
}
