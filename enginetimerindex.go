package sluice

// The partition engine's in-memory index of its timers, so that setting,
// replacing, cancelling and firing a timer reads no row of the store.
//
// Invariants:
//   - index mirrors the timer index entries of the store: it is read from
//     the store when the timers are loaded (at the first record or tick of
//     the task, and again after a discarded batch) and changed by the same
//     row changes, as they are applied. Changes not yet applied are rows the
//     engine holds, which it looks at first. So a key's timer is found in
//     memory: in the rows it holds, else in index.
//   - index holds at most indexLimit entries. A partition with more timers
//     has no index (nil) until its timers are loaded again, and its timers
//     are looked up in the store, row by row, as they were without one.
//   - low[k] is never later than the earliest live schedule entry of kind
//     k in the store, so that the scan of due timers starts there and does
//     not step over the deleted entries of timers fired before.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/sluice-io/sluice/store"
)

// timerIndexPerRow is how many timers the index holds per row of CacheRows:
// an entry is a key and 9 bytes, a fraction of a row.
const timerIndexPerRow = 4

// timerAt is where a timer's schedule entry is: its kind and time.
type timerAt struct {
	kind timerKind
	at   int64
}

// parseIndexEntry reads the value of a timer index entry.
func parseIndexEntry(ik string, raw []byte) (timerAt, error) {
	if len(raw) != 9 {
		return timerAt{}, fmt.Errorf("malformed timer index entry %q", ik)
	}
	return timerAt{kind: timerKind(raw[0]), at: int64(binary.BigEndian.Uint64(raw[1:]) ^ (1 << 63))}, nil
}

// scheduleTime is the time of the schedule entry k, which begins with
// scheduleSpace and its kind.
func scheduleTime(k []byte) (int64, bool) {
	const at = len(scheduleSpace) + 1
	if len(k) < at+8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(k[at:at+8]) ^ (1 << 63)), true
}

// loadTimerIndex reads the store's timer index entries into the index,
// unless there are more than it holds.
func (e *engine[V]) loadTimerIndex() error {
	tm := e.tm
	tm.index = make(map[string]timerAt)
	tm.low = [2]int64{math.MinInt64, math.MinInt64}
	lo := []byte(timerIndexSpan)
	hi := append([]byte(timerIndexSpan[:len(timerIndexSpan)-1]), timerIndexSpan[len(timerIndexSpan)-1]+1)
	it, err := e.st.Iter(lo, hi)
	if err != nil {
		return fmt.Errorf("group %s: partition %d: read timers: %w", e.cfg.group.name, e.partition, err)
	}
	for it.Next() {
		if len(tm.index) == tm.indexLimit {
			tm.index = nil
			break
		}
		ik := string(it.Key())
		t, err := parseIndexEntry(ik, it.Value())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		tm.index[ik] = t
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return fmt.Errorf("group %s: partition %d: read timers: %w", e.cfg.group.name, e.partition, err)
	}
	return nil
}

// timerOf returns where the timer of index key ik is, if it is set: from
// the rows the engine holds, else the index, else the store.
func (e *engine[V]) timerOf(ik string) (timerAt, bool, error) {
	var raw []byte
	if r, held := e.rows.peek(ik); held {
		if !r.exists {
			return timerAt{}, false, nil
		}
		raw = r.raw
	} else if e.tm.index != nil {
		t, ok := e.tm.index[ik]
		return t, ok, nil
	} else {
		var ok bool
		var err error
		if raw, ok, err = e.getRaw(ik); err != nil || !ok {
			return timerAt{}, false, err
		}
	}
	t, err := parseIndexEntry(ik, raw)
	return t, err == nil, err
}

// timersApplied brings the index, low and unapplied up to date with the
// row changes the store now holds.
func (e *engine[V]) timersApplied(changes []store.Change) {
	tm := e.tm
	if tm == nil {
		return
	}
	for _, c := range changes {
		k := c.Key
		if len(k) == 0 || k[0] != reservedPrefix[0] {
			continue
		}
		switch {
		case bytes.HasPrefix(k, []byte(timerIndexSpan)):
			switch {
			case tm.index == nil:
			case c.Value == nil:
				delete(tm.index, string(k))
			default:
				t, err := parseIndexEntry(string(k), c.Value)
				_, had := tm.index[string(k)]
				if err != nil || !had && len(tm.index) >= tm.indexLimit {
					tm.index = nil // looked up in the store from now on
					continue
				}
				tm.index[string(k)] = t
			}
		case bytes.HasPrefix(k, []byte(scheduleSpace)):
			sk := string(k)
			if r, ok := e.rows.peek(sk); !ok || !r.dirty {
				delete(tm.unapplied, sk)
			}
			if c.Value == nil {
				continue
			}
			if at, ok := scheduleTime(k); ok {
				i := kindIndex(timerKind(k[len(scheduleSpace)]))
				tm.low[i] = min(tm.low[i], at)
			}
		}
	}
	// What remains should be entries of the batch in hand, which are
	// dirty; any more are of records that failed and were undone.
	if len(tm.unapplied) > len(e.dirty) {
		for k := range tm.unapplied {
			if r, ok := e.rows.peek(k); !ok || !r.dirty {
				delete(tm.unapplied, k)
			}
		}
	}
}
