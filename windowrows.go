package sluice

// Where an engine finds its window rows: their keys, an aggregation's
// cursor, and the scan for the live ones (the invariants are those of
// enginewindow.go).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// aggRange is the range of the window rows of aggregation name.
func aggRange(name string) (lo, hi []byte) {
	lo = append(append([]byte(windowSpace), name...), 0)
	hi = append(append([]byte(windowSpace), name...), 1)
	return lo, hi
}

// spanKey is windowRowKey of a span, the bytes appendSpanKey lays out,
// in one allocation for the keys that fit spanKeyRoom.
func spanKey(name, key string, s span) string {
	var buf [spanKeyRoom]byte
	return string(appendSpanKey(buf[:0], name, key, s))
}

// spanKeyRoom is how long a window row key spanKey builds on its stack.
const spanKeyRoom = 128

// appendSpanKey appends the key of the window row of key in span s of
// aggregation name to dst: windowSpace, name, a zero byte, the end and
// the start in order-preserving big-endian, then key.
func appendSpanKey(dst []byte, name, key string, s span) []byte {
	dst = append(dst, windowSpace...)
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.end)^(1<<63))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.start)^(1<<63))
	return append(dst, key...)
}

// parseSpanKey is parseWindowRowKey in Unix nanoseconds.
func parseSpanKey(k string) (key string, s span, ok bool) {
	_, rest, found := strings.Cut(strings.TrimPrefix(k, windowSpace), "\x00")
	if !found || len(rest) < 16 {
		return "", span{}, false
	}
	s.end = int64(binary.BigEndian.Uint64([]byte(rest[:8])) ^ (1 << 63))
	s.start = int64(binary.BigEndian.Uint64([]byte(rest[8:16])) ^ (1 << 63))
	return rest[16:], s, true
}

// openFrom returns the range of aggregation name's windows after its
// cursor: those not closed yet.
func (e *engine[V]) openFrom(name string) (from, limit []byte, err error) {
	lo, limit := aggRange(name)
	cursor, ok, err := e.getRaw(windowCursorSpace + name)
	if err != nil {
		return nil, nil, fmt.Errorf("group %s: partition %d: read window cursor %q: %w", e.cfg.group.name, e.partition, name, err)
	}
	if !ok {
		return lo, limit, nil
	}
	return append(append([]byte(nil), cursor...), 0), limit, nil
}

// liveWindows returns the keys of the live window rows in [lo, hi), in
// order, and the first one in [hi, limit), "" if there is none. With all,
// the keys in [lo, hi) are of every row the store or unapplied holds
// there, also those the engine has deleted or undone since, for a caller
// that reads each row anyway and skips them.
func (e *engine[V]) liveWindows(lo, hi, limit []byte, all bool) (keys []string, next string, err error) {
	if string(lo) >= string(limit) {
		return nil, "", nil
	}
	// A row of the store is live unless the engine deleted it since; a
	// row of unapplied only if the engine holds it, not undone.
	live := func(k string) bool {
		r, held := e.rows.peek(k)
		return !held || r.exists
	}
	made := func(k string) bool {
		r, held := e.rows.peek(k)
		return held && r.exists
	}
	it, err := e.st.Iter(lo, limit)
	if err != nil {
		return nil, "", fmt.Errorf("group %s: partition %d: scan windows: %w", e.cfg.group.name, e.partition, err)
	}
	for it.Next() {
		// A row the engine holds has its key made already.
		var k string
		if r, held := e.rows.heldWindow(it.Key()); held {
			k = r.key
		} else {
			k = string(it.Key())
		}
		if k >= string(hi) {
			if !live(k) {
				continue // purged, not yet applied
			}
			next = k
			break
		}
		if all || live(k) {
			keys = append(keys, k)
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, "", fmt.Errorf("group %s: partition %d: scan windows: %w", e.cfg.group.name, e.partition, err)
	}
	stored := len(keys) // in order
	for _, unapplied := range [][]string{e.win.unapplied, e.win.written} {
		for _, k := range unapplied {
			if k < string(lo) || k >= string(limit) {
				continue
			}
			if k >= string(hi) {
				if (next == "" || k < next) && made(k) {
					next = k
				}
				continue
			}
			if all || made(k) {
				keys = append(keys, k)
			}
		}
	}
	if stored == len(keys) {
		return keys, next, nil
	}
	// Merge the few unapplied rows into the stored ones: a row can be
	// in both, set again since, in both of unapplied and written, made
	// again by a later batch, and in one of them more than once.
	slices.Sort(keys[stored:])
	keys = append(keys[:stored], slices.Compact(keys[stored:])...)
	if stored == 0 {
		return keys, next, nil
	}
	merged := make([]string, 0, len(keys))
	a, b := keys[:stored], keys[stored:]
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0] < b[0]:
			merged, a = append(merged, a[0]), a[1:]
		case len(a) == 0 || b[0] < a[0]:
			merged, b = append(merged, b[0]), b[1:]
		default:
			merged, a, b = append(merged, a[0]), a[1:], b[1:]
		}
	}
	return merged, next, nil
}
