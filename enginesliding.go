package sluice

// The partition engine's sliding windows, as Kafka Streams' SlidingWindows
// with a maximum time difference D.
//
// The windows of a key are, for each of its records at r, its left
// window [r-D, r], and, when another record lies in (r, r+1ns+D], its
// right window [r+1ns, r+1ns+D]: the records after r that fit within D.
// That is one window for each distinct set of the key's records whose
// times differ by at most D (a record set has the left window of its last
// record, or the right window of the record just before its first).
//
// Invariants:
//   - Every window is a window row, closed and purged as the other kinds'
//     are.
//   - A record at t is accepted only while its own left window is open
//     (stream time at most t plus grace). Every window it belongs to or
//     makes ends at or after t, so all of them are open: a window holds
//     every accepted record of its span, none came while it was closed.
//   - A new window's aggregate starts from an existing window of the key
//     that holds the same records, before the record, and the record is
//     added if the new window holds it. Such a window exists (as above)
//     and ends at or after t-D, and windows are kept until their end plus
//     D plus grace (the retention is at least 2D plus grace), so it is
//     there, closed or not, as long as a record at t can come.
//   - Each key with windows has an index row (slidingIndexKey): the
//     distinct times of its records that windows to come may hold, sorted,
//     and the latest time dropped from it. A time r is dropped once stream
//     time passes r+D+grace: a record accepted after that is more than D
//     after r, and no new window holds r. A window that starts at or
//     before the latest time dropped may hold dropped times, so it is
//     never taken as a start; the right window of the latest time dropped
//     may be the start a new window needs, which is why the row keeps that
//     time. The row is changelogged, undone and restored like the windows,
//     and deleted when its last time is dropped.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// slidingIndexSpace begins the keys of the sliding index rows: after it
// come the aggregation's name, a zero byte and the record key.
const slidingIndexSpace = reservedPrefix + "r"

func slidingIndexKey(name, key string) string {
	return slidingIndexSpace + name + "\x00" + key
}

// slidingIndex is what a key's index row holds: the times windows to come
// may hold, sorted and distinct, and the latest time dropped
// (math.MinInt64 if none).
type slidingIndex struct {
	dropped int64
	times   []int64
}

func decodeSlidingIndex(ik string, raw []byte) (slidingIndex, error) {
	x := slidingIndex{dropped: math.MinInt64}
	if len(raw) == 0 {
		return x, nil
	}
	if len(raw)%8 != 0 {
		return x, fmt.Errorf("malformed sliding window index row %q", ik)
	}
	x.dropped = int64(binary.BigEndian.Uint64(raw))
	for b := raw[8:]; len(b) > 0; b = b[8:] {
		x.times = append(x.times, int64(binary.BigEndian.Uint64(b)))
	}
	return x, nil
}

func (x slidingIndex) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+8*len(x.times)), uint64(x.dropped))
	for _, t := range x.times {
		b = binary.BigEndian.AppendUint64(b, uint64(t))
	}
	return b
}

// drop drops the times no window to come holds, and reports whether it
// dropped any.
func (x *slidingIndex) drop(w Windows, stream int64) bool {
	after := addSat(int64(w.size), w.closeDelay())
	n := 0
	for n < len(x.times) && addSat(x.times[n], after) <= stream {
		n++
	}
	if n == 0 {
		return false
	}
	x.dropped = x.times[n-1]
	x.times = x.times[n:]
	return true
}

// slidingSpans appends to buf the windows the times make (with the right
// window of dropped) whose defining time lies in [lo, hi].
func slidingSpans(times []int64, dropped, d, lo, hi int64, buf []span) []span {
	if dropped != math.MinInt64 && len(times) > 0 && times[0] <= addSat(dropped, addSat(d, 1)) {
		buf = append(buf, span{dropped + 1, addSat(dropped+1, d)})
	}
	i, _ := slices.BinarySearch(times, lo)
	for ; i < len(times) && times[i] <= hi; i++ {
		r := times[i]
		buf = append(buf, span{addSat(r, -d), r})
		if i+1 < len(times) && times[i+1] <= addSat(r, addSat(d, 1)) {
			buf = append(buf, span{r + 1, addSat(r+1, d)})
		}
	}
	return buf
}

// holding returns the index range [i, j) of the times s holds.
func holding(times []int64, s span) (i, j int) {
	i, _ = slices.BinarySearch(times, s.start)
	j, found := slices.BinarySearch(times, s.end)
	if found {
		j++
	}
	return i, j
}

func compareSpans(x, y span) int {
	if c := cmp.Compare(x.end, y.end); c != 0 {
		return c
	}
	return cmp.Compare(x.start, y.start)
}

// slidingChange is a window a record changes or makes: raw is its
// aggregate before the record (ok false: empty), made whether it is new.
type slidingChange struct {
	s    span
	raw  []byte
	ok   bool
	made bool
}

// addToSliding folds a message at p into key's sliding windows of
// aggregation a: it adds it to every window that holds p, and makes the
// windows p makes (its left window, its right window if a later record
// lies within maxDiff, and the right window of the record before it), each
// starting from the aggregate of an existing window that holds the same
// records. The record is late when its left window has closed.
func (e *engine[V]) addToSliding(a *windowAgg[V], index int, key string, p Point, fold windowFold) error {
	t, d := p.Time.UnixNano(), int64(a.w.size)
	if e.stream >= a.w.closesAt(t) {
		return &LateError{Aggregation: a.name, Time: p.Time, StreamTime: e.streamTime()}
	}
	ik := slidingIndexKey(a.name, key)
	raw, _, err := e.getRaw(ik)
	if err != nil {
		return err
	}
	x, err := decodeSlidingIndex(ik, raw)
	if err != nil {
		return err
	}
	changed := x.drop(a.w, e.stream)
	i, dup := slices.BinarySearch(x.times, t)
	after := x.times
	if !dup {
		after = slices.Insert(slices.Clone(x.times), i, t)
		changed = true
	}
	// The windows that hold t or are t's right window, after it.
	right := span{t + 1, addSat(t+1, d)}
	near := slidingSpans(after, x.dropped, d, addSat(t, -addSat(d, 1)), addSat(t, d), e.win.buf[:0])
	targets := slices.DeleteFunc(near, func(s span) bool { return (s.start > t || s.end < t) && s != right })
	slices.SortFunc(targets, compareSpans)
	targets = slices.Compact(targets)
	e.win.buf = targets

	// Read every aggregate first: a window a new one starts from may be
	// one the record changes.
	var changes []slidingChange
	var starts []span
	for _, s := range targets {
		old, ok, err := e.getRaw(spanKey(a.name, key, s))
		if err != nil {
			return err
		}
		holds := s.start <= t && t <= s.end
		if ok {
			if holds {
				changes = append(changes, slidingChange{s: s, raw: old, ok: true})
			}
			continue
		}
		if dup {
			return fmt.Errorf("window %q of key %q: window %v of a record time it has seen is missing", a.name, key, s.window())
		}
		if starts == nil {
			starts = slidingSpans(x.times, x.dropped, d, addSat(t, -addSat(addSat(d, d), 1)), addSat(t, addSat(addSat(d, d), 1)), nil)
			// A window that starts at or before the latest dropped time
			// may hold it, whatever the index says it holds.
			starts = slices.DeleteFunc(starts, func(c span) bool { return c.start <= x.dropped })
		}
		from, found, err := e.slidingStart(a, key, x.times, s, starts)
		if err != nil {
			return err
		}
		if found || holds {
			changes = append(changes, slidingChange{s: s, raw: from, ok: found, made: true})
		}
	}

	var zero V
	ws := e.win
	for _, c := range changes {
		var agg []byte
		if c.s.start <= t && t <= c.s.end {
			if agg, _, err = fold.fold(c.raw, c.ok, nil); err != nil {
				return err
			}
		} else {
			agg = bytes.Clone(c.raw) // t's right window: the records after t
		}
		k := spanKey(a.name, key, c.s)
		if err := e.setRaw(k, agg, true, zero, false); err != nil {
			return err
		}
		if c.made {
			ws.unapplied = append(ws.unapplied, k)
			ws.open++
			at := a.w.closesAt(c.s.end)
			ws.aggs[index].nextClose = min(ws.aggs[index].nextClose, at)
			ws.next = min(ws.next, at)
		}
		if a.w.updates {
			if err := e.callResult(a, key, c.s.window(), agg, false); err != nil {
				return err
			}
			e.cfg.metrics.windowResult(false)
		}
	}
	if !changed {
		return nil
	}
	x.times = after
	return e.setRaw(ik, x.encode(), true, zero, false)
}

// slidingStart returns the aggregate of the window among starts that holds
// the same records of times as s, and false if s holds none.
func (e *engine[V]) slidingStart(a *windowAgg[V], key string, times []int64, s span, starts []span) ([]byte, bool, error) {
	i, j := holding(times, s)
	if i == j {
		return nil, false, nil
	}
	for _, c := range starts {
		if ci, cj := holding(times, c); ci != i || cj != j {
			continue
		}
		raw, ok, err := e.getRaw(spanKey(a.name, key, c))
		if err != nil {
			return nil, false, err
		}
		if ok {
			return raw, true, nil
		}
	}
	return nil, false, fmt.Errorf("window %q of key %q: no window holds the records of the new window %v", a.name, key, s.window())
}

// slidingPurged drops from the index of the key of the purged window row
// k the times no window to come holds, deleting the row when none is
// left.
func (e *engine[V]) slidingPurged(a *windowAgg[V], k string) error {
	key, _, _ := parseSpanKey(k)
	ik := slidingIndexKey(a.name, key)
	raw, ok, err := e.getRaw(ik)
	if err != nil || !ok {
		return err
	}
	x, err := decodeSlidingIndex(ik, raw)
	if err != nil {
		return err
	}
	if !x.drop(a.w, e.stream) {
		return nil
	}
	var zero V
	if len(x.times) == 0 {
		return e.setRaw(ik, nil, false, zero, false)
	}
	return e.setRaw(ik, x.encode(), true, zero, false)
}
