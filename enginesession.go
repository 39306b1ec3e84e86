package sluice

// The partition engine's session windows.
//
// Invariants:
//   - A session of a key is a window row like any other (windowRowKey):
//     its start and end are the times of its first and last records, so it
//     closes, is purged and is restored as the other kinds' windows are.
//   - Window rows sort by end, not by key, so each key with open sessions
//     of an aggregation also has an index row (sessionIndexKey) that lists
//     them: 16 bytes each, end then start (sortableTime), in order of end.
//     It is a table row, so it is written to the changelog with the batch,
//     undone with a failed record and restored with the table; a record
//     reads one row to find the sessions it joins, and the row is deleted
//     when the key's last open session closes.
//   - Two open sessions of a key are at least gap apart: a record less than
//     gap from a session joins it, and one that joins two merges them.
//   - Every session row written is open (its end plus gap plus grace is
//     after stream time), so it sorts after the aggregation's cursor.

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// sessionIndexSpace begins the keys of the session index rows: after it
// come the aggregation's name, a zero byte and the record key.
const sessionIndexSpace = reservedPrefix + "k"

func sessionIndexKey(name, key string) string {
	return sessionIndexSpace + name + "\x00" + key
}

func decodeSessions(ik string, raw []byte) ([]span, error) {
	if len(raw)%16 != 0 {
		return nil, fmt.Errorf("malformed session index row %q", ik)
	}
	ss := make([]span, 0, len(raw)/16+1)
	for b := raw; len(b) > 0; b = b[16:] {
		ss = append(ss, span{
			end:   int64(binary.BigEndian.Uint64(b[:8]) ^ (1 << 63)),
			start: int64(binary.BigEndian.Uint64(b[8:16]) ^ (1 << 63)),
		})
	}
	return ss, nil
}

func encodeSessions(ss []span) []byte {
	b := make([]byte, 0, 16*len(ss))
	for _, s := range ss {
		b = binary.BigEndian.AppendUint64(b, uint64(s.end)^(1<<63))
		b = binary.BigEndian.AppendUint64(b, uint64(s.start)^(1<<63))
	}
	return b
}

// keySessions returns the open sessions of key of aggregation a, in order
// of end.
func (e *engine[V]) keySessions(a *windowAgg[V], key string) ([]span, error) {
	ik := sessionIndexKey(a.name, key)
	raw, _, err := e.getRaw(ik)
	if err != nil {
		return nil, err
	}
	return decodeSessions(ik, raw)
}

// setKeySessions writes the index row of key's open sessions, or deletes
// it when there are none.
func (e *engine[V]) setKeySessions(a *windowAgg[V], key string, ss []span) error {
	var zero V
	ik := sessionIndexKey(a.name, key)
	if len(ss) == 0 {
		return e.setRaw(ik, nil, false, zero, false)
	}
	return e.setRaw(ik, encodeSessions(ss), true, zero, false)
}

// addToSession folds a message at p into key's session of aggregation a
// that it falls in: a session less than gap from p is extended to take
// it, two such sessions are merged into one with the aggregator's Merge,
// and a record far from every open session starts a new one. A session
// that changes its start or end changes its row key: its old row is
// deleted and the new one written in the same batch. The record is late
// when it joins no open session and a session of it alone would be
// closed already.
func (e *engine[V]) addToSession(a *windowAgg[V], index int, key string, p Point, fold windowFold) error {
	open, err := e.keySessions(a, key)
	if err != nil {
		return err
	}
	t, gap := p.Time.UnixNano(), int64(a.w.size)
	merged := span{t, t}
	var joined []span
	rest := open[:0:0]
	for _, s := range open {
		if t-s.end < gap && s.start-t < gap {
			joined = append(joined, s)
			merged.start, merged.end = min(merged.start, s.start), max(merged.end, s.end)
		} else {
			rest = append(rest, s)
		}
	}
	if len(joined) == 0 && e.stream >= a.w.closesAt(t) {
		return &LateError{Aggregation: a.name, Time: p.Time, StreamTime: e.streamTime()}
	}
	// The aggregate of the joined sessions, earliest first, and the
	// record.
	var agg []byte
	for i, s := range joined {
		raw, ok, err := e.getRaw(spanKey(a.name, key, s))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("window %q of key %q: the row of session %v is missing", a.name, key, s.window())
		}
		if i == 0 {
			agg = raw
		} else if agg, err = a.merge(agg, raw); err != nil {
			return err
		}
	}
	if agg, _, err = fold.fold(agg, len(joined) > 0, nil); err != nil {
		return err
	}
	var zero V
	ws := e.win
	for _, s := range joined {
		if s == merged {
			continue // the record fell inside it: the row stays
		}
		if err := e.setRaw(spanKey(a.name, key, s), nil, false, zero, false); err != nil {
			return err
		}
		ws.open--
	}
	k := spanKey(a.name, key, merged)
	if err := e.setRaw(k, agg, true, zero, false); err != nil {
		return err
	}
	if !slices.Contains(joined, merged) {
		ws.unapplied = append(ws.unapplied, k)
		ws.open++
		at := a.w.closesAt(merged.end)
		ws.aggs[index].nextClose = min(ws.aggs[index].nextClose, at)
		ws.next = min(ws.next, at)
	}
	i, _ := slices.BinarySearchFunc(rest, merged, func(x, y span) int { return compareEnd(x, y) })
	if err := e.setKeySessions(a, key, slices.Insert(rest, i, merged)); err != nil {
		return err
	}
	if !a.w.updates {
		return nil
	}
	if err := e.callResult(a, key, merged.window(), agg, false); err != nil {
		return err
	}
	e.cfg.metrics.windowResult(false)
	return nil
}

func compareEnd(x, y span) int {
	switch {
	case x.end < y.end:
		return -1
	case x.end > y.end:
		return 1
	}
	return 0
}

// sessionClosed takes the session s, whose window row k has closed, off
// its key's index of open sessions.
func (e *engine[V]) sessionClosed(a *windowAgg[V], k string, s span) error {
	key, _, _ := parseSpanKey(k)
	open, err := e.keySessions(a, key)
	if err != nil {
		return err
	}
	return e.setKeySessions(a, key, slices.DeleteFunc(open, func(x span) bool { return x == s }))
}
