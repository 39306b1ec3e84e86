package sluice

// The partition engine's stream time and timers.
//
// Invariants:
//   - Timers and the stream time of a group with a timer handler are rows
//     of the group's table under keys that begin with reservedPrefix, which
//     no record key may begin with (such a record fails). So they are
//     written to the changelog with the batch, undone with a failed record,
//     applied and discarded with the rows, restored with the table and moved
//     with the partition; views and Iterate skip them.
//   - A timer is two rows: its schedule entry, whose key sorts by kind,
//     then time, then key and name, so that the due timers of a kind are a
//     range scan in time order; and its index entry, by key and name, which
//     says where its schedule entry is, to replace or cancel it.
//   - The store holds the timers of the applied batches; schedule entries
//     set since are in unapplied, so that a scan of the store and of
//     unapplied, filtered through the rows the engine holds (which know of
//     deletions not yet applied), finds every live timer.
//   - nextAt is never later than the earliest live timer of its kind, so a
//     record or a tick before it has nothing to fire and costs a compare.
//   - Where a key's timer is, is found in memory while the partition has
//     no more timers than the engine indexes (enginetimerindex.go).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// reservedPrefix begins the keys of the rows sluice keeps in a table for
// itself. A record key cannot begin with it.
const reservedPrefix = "\x00sluice\x00"

const (
	streamTimeKey  = reservedPrefix + "st"
	scheduleSpace  = reservedPrefix + "q"
	timerIndexSpan = reservedPrefix + "n"
)

type timerKind byte

const (
	eventTimer timerKind = 'e'
	wallTimer  timerKind = 'w'
)

// The times a timer can be set for: those of int64 Unix nanoseconds.
var (
	minTimerTime = time.Unix(0, math.MinInt64+1)
	maxTimerTime = time.Unix(0, math.MaxInt64-1)
)

// streamNanos is t in Unix nanoseconds, the unit of stream time, and
// whether t is within what they hold. A Kafka timestamp, milliseconds in
// an int64, reaches far beyond: outside the years 1678 to 2262 its
// nanoseconds would wrap to an unrelated time.
func streamNanos(t time.Time) (int64, bool) {
	if t.Before(minTimerTime) || t.After(maxTimerTime) {
		return 0, false
	}
	return t.UnixNano(), true
}

// noStreamTime is the stream time of a partition that has seen no record.
const noStreamTime = math.MinInt64

// reservedKey reports whether a record key begins with reservedPrefix.
func reservedKey(k []byte) bool {
	return len(k) > 0 && k[0] == reservedPrefix[0] && bytes.HasPrefix(k, []byte(reservedPrefix))
}

// errReservedKey is why a record whose key begins with reservedPrefix fails.
var errReservedKey = errors.New("record key begins with the prefix sluice reserves for its timers and stream time (0x00 \"sluice\" 0x00)")

// timerState is what an engine of a group with a timer handler keeps of its
// timers.
type timerState struct {
	loaded bool
	// The earliest time a live timer of each kind may be due at, in Unix
	// nanoseconds; math.MaxInt64 when there is none.
	nextAt [2]int64
	// Schedule entries set since the store was last updated.
	unapplied map[string]struct{}
	// The stream time of the last batch written, to write it only when
	// it changed.
	writtenStreamTime int64
	// The store's timer index entries, by index key, nil when there are
	// more than indexLimit; and, by kind, a time no live schedule entry
	// of the store is earlier than (enginetimerindex.go).
	index      map[string]timerAt
	indexLimit int
	low        [2]int64
}

func kindIndex(k timerKind) int {
	if k == wallTimer {
		return 1
	}
	return 0
}

// sortableTime is t in Unix nanoseconds, as 8 bytes that sort in time order.
func sortableTime(ns int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(ns)^(1<<63))
}

func keyAndName(b []byte, key, name string) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, name...)
}

// scheduleKey and indexKey are made in one buffer of their size: a timer
// set or cancelled makes two or three of them.
func scheduleKey(kind timerKind, at int64, key, name string) string {
	b := make([]byte, 0, len(scheduleSpace)+1+8+binary.MaxVarintLen64+len(key)+len(name))
	b = append(append(b, scheduleSpace...), byte(kind))
	b = binary.BigEndian.AppendUint64(b, uint64(at)^(1<<63))
	return string(keyAndName(b, key, name))
}

func indexKey(key, name string) string {
	b := make([]byte, 0, len(timerIndexSpan)+binary.MaxVarintLen64+len(key)+len(name))
	return string(keyAndName(append(b, timerIndexSpan...), key, name))
}

// parseSchedule splits a schedule entry's key.
func parseSchedule(k string) (kind timerKind, at int64, key, name string, err error) {
	rest := strings.TrimPrefix(k, scheduleSpace)
	if len(rest) < 10 || len(rest) == len(k) {
		return 0, 0, "", "", fmt.Errorf("malformed timer entry %q", k)
	}
	kind = timerKind(rest[0])
	at = int64(binary.BigEndian.Uint64([]byte(rest[1:9])) ^ (1 << 63))
	n, w := binary.Uvarint([]byte(rest[9:]))
	rest = rest[9+w:]
	if w <= 0 || uint64(len(rest)) < n {
		return 0, 0, "", "", fmt.Errorf("malformed timer entry %q", k)
	}
	return kind, at, rest[:n], rest[n:], nil
}

// timerRange is the range of the schedule keys of kind.
func timerRange(kind timerKind) (lo, hi []byte) {
	lo = append([]byte(scheduleSpace), byte(kind))
	hi = append([]byte(scheduleSpace), byte(kind)+1)
	return lo, hi
}

// streamTime is the partition's stream time, for handlers.
func (e *engine[V]) streamTime() time.Time {
	if e.stream == noStreamTime {
		return time.Time{}
	}
	return time.Unix(0, e.stream)
}

// loadTimers reads the stream time and the earliest timers from the store,
// once, before the first record or tick.
func (e *engine[V]) loadTimers() error {
	tm := e.tm
	if tm.loaded {
		return nil
	}
	raw, ok, err := e.getRaw(streamTimeKey)
	if err != nil {
		return fmt.Errorf("group %s: partition %d: read stream time: %w", e.cfg.group.name, e.partition, err)
	}
	e.stream, tm.writtenStreamTime = noStreamTime, noStreamTime
	if ok && len(raw) == 8 {
		e.stream = int64(binary.BigEndian.Uint64(raw))
		tm.writtenStreamTime = e.stream
	}
	tm.nextAt = [2]int64{math.MinInt64, math.MinInt64} // found by the first scan
	if err := e.loadTimerIndex(); err != nil {
		return err
	}
	if err := e.loadWindows(); err != nil {
		return err
	}
	tm.loaded = true
	e.idleFrom, e.idleStream = e.now(), e.stream
	return nil
}

// setTimer sets the timer name of key. Set again for the time it is set
// for, it is left as it is; moved, its schedule entry moves and its index
// entry is overwritten.
func (e *engine[V]) setTimer(key, name string, kind timerKind, at time.Time) error {
	if e.tm == nil || e.cfg.group.onTimer == nil {
		return fmt.Errorf("group %s has no timer handler: declare one with OnTimer", e.cfg.group.name)
	}
	if at.Before(minTimerTime) || at.After(maxTimerTime) {
		return fmt.Errorf("timer %q of key %q: time %v is out of range (%d to %d)", name, key, at, minTimerTime.Year(), maxTimerTime.Year())
	}
	ns := at.UnixNano()
	ik := indexKey(key, name)
	old, set, err := e.timerOf(ik)
	if err != nil {
		return err
	}
	if set && old == (timerAt{kind: kind, at: ns}) {
		return nil
	}
	var zero V
	if set {
		if err := e.setRaw(scheduleKey(old.kind, old.at, key, name), nil, false, zero, false); err != nil {
			return err
		}
	}
	sk := scheduleKey(kind, ns, key, name)
	if err := e.setRaw(sk, []byte{1}, true, zero, false); err != nil {
		return err
	}
	idx := binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), byte(kind)), uint64(ns)^(1<<63))
	if err := e.setRaw(ik, idx, true, zero, false); err != nil {
		return err
	}
	e.tm.unapplied[sk] = struct{}{}
	if i := kindIndex(kind); ns < e.tm.nextAt[i] {
		e.tm.nextAt[i] = ns
	}
	return nil
}

// cancelTimer removes the timer name of key, if there is one.
func (e *engine[V]) cancelTimer(key, name string) error {
	if e.tm == nil || e.cfg.group.onTimer == nil {
		return fmt.Errorf("group %s has no timer handler: declare one with OnTimer", e.cfg.group.name)
	}
	ik := indexKey(key, name)
	t, ok, err := e.timerOf(ik)
	if err != nil || !ok {
		return err
	}
	var zero V
	if err := e.setRaw(scheduleKey(t.kind, t.at, key, name), nil, false, zero, false); err != nil {
		return err
	}
	return e.setRaw(ik, nil, false, zero, false)
}

// pinnedOnly reports whether key is a row of a timer, which the engine
// holds only while it is pinned (rows.go): the timer index knows where a
// key's timer is, so its rows are read again only when a partition has
// more timers than the index holds.
func pinnedOnly(key string) bool {
	return len(key) > len(reservedPrefix) && key[0] == reservedPrefix[0] &&
		(strings.HasPrefix(key, scheduleSpace) || strings.HasPrefix(key, timerIndexSpan))
}

// due reports whether stream time has reached a window to close or purge
// or an event-time timer to fire.
func (e *engine[V]) due() bool {
	return e.tm != nil && e.stream >= e.tm.nextAt[0] || e.win != nil && e.stream >= e.win.next
}

// advance moves stream time to ts, if later, closes and purges the windows
// then due and fires the event-time timers then due, in that order. It
// returns the error that stops the partition (Fail).
func (e *engine[V]) advance(ts int64) error {
	if ts > e.stream {
		e.stream = ts
	}
	if e.win != nil && e.stream >= e.win.next {
		if err := e.closeWindows(); err != nil {
			return err
		}
	}
	if e.tm == nil || e.stream < e.tm.nextAt[0] {
		return nil
	}
	return e.fireDue(eventTimer, e.stream)
}

// fireDue fires the timers of kind due at or before now, in time order,
// and finds when the next one is due. Timers set meanwhile that are due
// already fire at the next call.
func (e *engine[V]) fireDue(kind timerKind, now int64) error {
	due, next, err := e.dueTimers(kind, now)
	if err != nil {
		return err
	}
	e.tm.nextAt[kindIndex(kind)] = next
	for _, sk := range due {
		if err := e.fire(sk); err != nil {
			return err
		}
	}
	return nil
}

// dueTimers returns the live schedule entries of kind due at or before now,
// in order, and the time of the first one after now.
func (e *engine[V]) dueTimers(kind timerKind, now int64) (due []string, next int64, err error) {
	next = math.MaxInt64
	lo, hi := timerRange(kind)
	end := string(lo) + string(sortableTime(now+1)) // the first key not due
	// The scan starts at the earliest live entry the store may hold, past
	// the deleted entries of the timers fired before.
	i := kindIndex(kind)
	from := lo
	if low := e.tm.low[i]; low != math.MinInt64 {
		from = append(slices.Clip(lo), sortableTime(low)...)
	}
	it, err := e.st.Iter(from, hi)
	if err != nil {
		return nil, 0, fmt.Errorf("group %s: partition %d: scan timers: %w", e.cfg.group.name, e.partition, err)
	}
	first := int64(math.MaxInt64) // the time of the first live entry
	for it.Next() {
		k := string(it.Key())
		if r, held := e.rows.peek(k); held && !r.exists {
			continue // fired or cancelled, not yet applied
		}
		at, ok := scheduleTime(it.Key())
		if !ok {
			return nil, 0, errors.Join(fmt.Errorf("malformed timer entry %q", k), it.Close())
		}
		first = min(first, at)
		if k >= end {
			next = at
			break
		}
		due = append(due, k)
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, 0, fmt.Errorf("group %s: partition %d: scan timers: %w", e.cfg.group.name, e.partition, err)
	}
	// Entries before first are deleted, or fired or cancelled by the batch
	// in hand: they stay so unless the batch is discarded, which loads the
	// timers anew.
	e.tm.low[i] = first
	for k := range e.tm.unapplied {
		if !strings.HasPrefix(k, string(lo)) {
			continue
		}
		r, held := e.rows.peek(k)
		if !held {
			delete(e.tm.unapplied, k) // set by a record that failed
			continue
		}
		if !r.exists {
			continue // fired or cancelled
		}
		if k >= end {
			if at, ok := scheduleTime([]byte(k)); ok && at < next {
				next = at
			}
			continue
		}
		due = append(due, k)
	}
	slices.Sort(due)
	// An entry set again for the same time is in the store and unapplied.
	return slices.Compact(due), next, nil
}

// fire runs the timer handler for the schedule entry sk, if the timer is
// still set, as a record is run: its effects are undone if it fails, and
// the error policy applies.
func (e *engine[V]) fire(sk string) error {
	// An entry dueTimers found that the engine does not hold is the
	// store's, unchanged.
	if r, held := e.rows.peek(sk); held && !r.exists {
		return nil // cancelled by a timer fired before it
	}
	kind, at, key, name, err := parseSchedule(sk)
	if err != nil {
		return err
	}
	t := Timer{Name: name, Time: time.Unix(0, at), Wall: kind == wallTimer}
	c := &e.ctx
	if c.ctx == nil {
		c.ctx = e.baseCtx
	}
	rec := &kgo.Record{Partition: e.partition, Offset: -1, Key: []byte(key), Value: []byte(name), Timestamp: t.Time}
	c.rec, c.key, c.err, c.at = rec, key, nil, t.Time
	clear(e.undo)
	e.recordDirty = len(e.dirty)
	emitted := len(e.out)
	err = e.cancelTimer(key, name)
	if err == nil {
		err = e.callTimer(t)
	}
	if err == nil {
		err = c.err
	}
	if err == nil {
		clear(e.undo)
		return nil
	}
	clear(e.out[emitted:])
	e.out = e.out[:emitted]
	e.undoRecord()
	clear(e.undo)
	terr := &TimerError{Group: e.cfg.group.name, Partition: e.partition, Key: key, Timer: t, Err: err}
	e.cfg.metrics.recordFailed(e.partition, e.cfg.policy.kind, terr)
	if e.cfg.policy.kind == failPolicy {
		// The timer stays, to fire again when the partition restarts.
		return terr
	}
	// Skipped or dead-lettered, the timer is done with.
	e.recordDirty = len(e.dirty)
	if cerr := e.cancelTimer(key, name); cerr != nil {
		return cerr
	}
	clear(e.undo)
	return e.onFailure([]*kgo.Record{rec}, terr)
}

// callTimer runs the timer handler, turning a panic into an error.
func (e *engine[V]) callTimer(t Timer) (err error) {
	if e.m.timed {
		defer e.m.handled(time.Now())
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return e.cfg.group.onTimer(&e.ctx, t)
}

// tick fires the wall-clock timers due at now and, with IdleAdvance, moves
// stream time on in a partition that has been idle long enough, firing the
// event-time timers then due. The driver calls it periodically, between
// batches, and writes its effects as a batch's.
func (e *engine[V]) tick(now time.Time) error {
	if e.tm == nil {
		return nil
	}
	if err := e.loadTimers(); err != nil {
		return err
	}
	to := e.stream
	if d := e.cfg.idleAdvance; d > 0 && e.idleStream != noStreamTime {
		if idle := now.Sub(e.idleFrom); idle >= d {
			to = max(to, e.idleStream+int64(idle))
		}
	}
	// Also fires the event-time timers set for a time stream time had
	// reached already.
	if to != noStreamTime {
		if err := e.advance(to); err != nil {
			return err
		}
	}
	if ns := now.UnixNano(); ns >= e.tm.nextAt[1] {
		return e.fireDue(wallTimer, ns)
	}
	return nil
}

// changed reports whether the batch in hand changed rows.
func (e *engine[V]) changed() bool { return len(e.dirty) > 0 }

// writeStreamTime adds the stream time to the batch's rows when it moved.
func (e *engine[V]) writeStreamTime() {
	tm := e.tm
	if tm == nil || !tm.loaded || e.stream == tm.writtenStreamTime {
		return
	}
	var zero V
	raw := binary.BigEndian.AppendUint64(nil, uint64(e.stream))
	if err := e.setRaw(streamTimeKey, raw, true, zero, false); err == nil {
		tm.writtenStreamTime = e.stream
	}
	clear(e.undo)
}

// timersDiscarded goes back to the store's timers and stream time.
func (e *engine[V]) timersDiscarded() {
	if e.tm == nil {
		return
	}
	clear(e.tm.unapplied)
	e.tm.loaded = false
}
