package sluice

// Windowed aggregation on event time: the types a group declares a windowed
// aggregation with. How the engine keeps, closes and purges windows is in
// the engine's window files.

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-io/sluice/codec"
)

// windowKind is the shape of a windowed aggregation's windows.
type windowKind int

const (
	tumblingWindows windowKind = iota + 1
	hoppingWindows
	slidingWindows
	sessionWindows
)

func (k windowKind) String() string {
	switch k {
	case tumblingWindows:
		return "tumbling"
	case hoppingWindows:
		return "hopping"
	case slidingWindows:
		return "sliding"
	case sessionWindows:
		return "session"
	default:
		return "unknown"
	}
}

// Windows says how a windowed aggregation groups a key's records by time:
// the kind and size of its windows, how long a window stays open after its
// end for records that arrive out of order (grace), how long a closed
// window is kept (retention) and whether results are emitted only when a
// window closes or on every update. It is a value: the methods return a
// changed copy.
//
// Windows are of event time: a record belongs to windows by its time, and a
// window closes by the partition's stream time, never by the wall clock
// (except through IdleAdvance, which lets stream time follow the wall clock
// while a partition is idle).
type Windows struct {
	kind      windowKind
	size      time.Duration // tumbling, hopping: the window size; sliding: the maximum time difference; session: the inactivity gap
	advance   time.Duration // hopping only
	grace     time.Duration
	retention time.Duration // 0: the default, size + grace (gap + grace for sessions)
	updates   bool
}

// Tumbling returns windows of size, aligned to the Unix epoch: the windows
// [k·size, (k+1)·size) for every integer k. Each record belongs to exactly
// one; a record at exactly (k+1)·size belongs to the next window.
func Tumbling(size time.Duration) Windows { return Windows{kind: tumblingWindows, size: size} }

// Hopping returns windows of size that start every advance, aligned to the
// Unix epoch: the windows [k·advance, k·advance+size) for every integer k.
// A record belongs to every such window that contains it, size/advance of
// them when advance divides size. advance must not exceed size.
func Hopping(size, advance time.Duration) Windows {
	return Windows{kind: hoppingWindows, size: size, advance: advance}
}

// Sliding returns windows of length maxDiff defined by the records
// themselves, as Kafka Streams' SlidingWindows: two records of a key fall
// in a common window when their times differ by at most maxDiff. A record
// at t makes the window [t-maxDiff, t], which holds it and the key's
// records up to maxDiff before it, and, once a later record of the key
// lies within maxDiff (and 1ns) of it, the window [t+1ns, t+1ns+maxDiff],
// which holds the records after it (Kafka Streams: t+1ms, its unit of
// time). So every distinct set of a key's records that fits in maxDiff
// has one window and one result. A record is added to every window that
// holds it; the aggregate of a new window starts from that of an existing
// window with the same records, so a record costs a read of each window
// within maxDiff of it, one for each of the key's records there.
//
// Both bounds are in the window: it closes when stream time passes its
// end plus grace (its end plus grace plus 1ns). A record is late when its
// own window [t-maxDiff, t] has closed, and is then added to no window
// (Kafka Streams still adds it to the later windows that hold it), so
// that every window holds all the records of its span. Windows are kept
// until twice maxDiff plus grace after their start, the least retention
// allowed: a new window starts from a window that may have closed.
func Sliding(maxDiff time.Duration) Windows { return Windows{kind: slidingWindows, size: maxDiff} }

// Sessions returns session windows with inactivity gap gap: the records of a
// key whose times lie less than gap apart form one session, [first, last]
// (records exactly gap apart are in two sessions). A record less than gap
// from a session extends it; one less than gap from two sessions merges
// them into one, whose aggregate is the aggregator's Merge of theirs (the
// earlier first) with the record added. A session closes when stream time
// reaches its end plus gap plus grace, as a record could extend it until
// then. A record that joins no open session and whose own session would
// be closed already (its time plus gap plus grace is at or before stream
// time) is late. Retention counts from a session's end (default: gap plus
// grace, purged at close).
//
// With EmitUpdates, the handler gets an update of the session a record
// made, extended or merged; the sessions it replaced get no more results,
// neither updates nor a final one: the new session's results supersede
// theirs, and each session that closes gets one final result.
func Sessions(gap time.Duration) Windows { return Windows{kind: sessionWindows, size: gap} }

// Grace returns w with grace period d: a window accepts records while the
// partition's stream time is before its end plus d, and closes when stream
// time reaches it. A record whose every window is closed is late: it fails
// with a *LateError under the group's error policy. Default: 0, a window
// closes as soon as stream time reaches its end.
func (w Windows) Grace(d time.Duration) Windows { w.grace = d; return w }

// Retain returns w with retention d, the time from a window's start (a
// session's end) after which the window is purged from the store and its
// changelog, measured in stream time. A view sees closed windows until
// they are purged. d must be at least the window's size plus grace (for
// sessions, gap plus grace; for sliding windows, twice maxDiff plus
// grace). Default: that least retention, so a window is purged when it
// closes (a sliding window, maxDiff after).
func (w Windows) Retain(d time.Duration) Windows { w.retention = d; return w }

// EmitUpdates returns w set to hand a result to the aggregation's handler
// after every record that changes a window, not final. The final result is
// still handed once, when the window closes. Default: off, only final
// results.
func (w Windows) EmitUpdates() Windows { w.updates = true; return w }

// String describes w, as in "tumbling 10s, grace 2s".
func (w Windows) String() string {
	var b strings.Builder
	b.WriteString(w.kind.String())
	switch w.kind {
	case hoppingWindows:
		fmt.Fprintf(&b, " %s every %s", w.size, w.advance)
	case sessionWindows:
		fmt.Fprintf(&b, " gap %s", w.size)
	case slidingWindows:
		fmt.Fprintf(&b, " within %s", w.size)
	default:
		fmt.Fprintf(&b, " %s", w.size)
	}
	if w.grace > 0 {
		fmt.Fprintf(&b, ", grace %s", w.grace)
	}
	if w.retention > 0 {
		fmt.Fprintf(&b, ", retain %s", w.retention)
	}
	if w.updates {
		b.WriteString(", with updates")
	}
	return b.String()
}

// validate reports what is wrong with w, or nil.
func (w Windows) validate() error {
	switch {
	case w.kind == 0:
		return fmt.Errorf("windows are not set: use Tumbling, Hopping, Sliding or Sessions")
	case w.size <= 0:
		return fmt.Errorf("%s windows: size must be positive, not %s", w.kind, w.size)
	case w.kind == hoppingWindows && (w.advance <= 0 || w.advance > w.size):
		return fmt.Errorf("hopping windows: advance must be positive and at most the size %s, not %s", w.size, w.advance)
	case w.grace < 0:
		return fmt.Errorf("%s windows: grace must not be negative, not %s", w.kind, w.grace)
	case w.retention != 0 && int64(w.retention) < w.minRetention():
		return fmt.Errorf("%s windows: retention %s is shorter than %s, %s", w.kind, w.retention, w.minRetentionText(), time.Duration(w.minRetention()))
	}
	return nil
}

// Window is one window of a key: [Start, End) for tumbling and hopping
// windows, [Start, End] for sliding and session windows, whose bounds are
// record times.
type Window struct {
	Start, End time.Time
}

// Point is where a record stands in event time: its time, and its offset to
// order records of the same time within a partition.
type Point struct {
	Time   time.Time
	Offset int64
}

// Aggregator folds the records of a window into an aggregate of type A,
// which is kept in the group's store and changelog, encoded with Codec.
// Init returns the aggregate of an empty window; Add returns agg with msg,
// which arrived at p, folded in, and may change and return agg itself;
// Merge returns the aggregate of two sessions' aggregates, when a record
// bridges them (only session windows need it). The ready-made aggregators
// are Count, Sum, Min, Max, LatestValue and Quantiles.
type Aggregator[M, A any] struct {
	Init  func() A
	Add   func(agg A, msg M, p Point) A
	Merge func(a, b A) A
	Codec codec.Codec[A]
}

// WindowResult is the result of one window of a key: the window, the
// aggregate of its records, and whether it is final (the window has
// closed; there is exactly one final result per window) or an update
// (EmitUpdates).
type WindowResult[A any] struct {
	Key    string
	Window Window
	Value  A
	Final  bool
}

// WindowHandler handles a windowed aggregation's result. ctx is the
// context of the result's key, as in a timer handler: its row, emits and
// loopbacks work as in an input handler, and the effects are written and
// committed with the batch. A returned error or a panic is a failure under
// the group's error policy, as a timer handler's. For a final result,
// ctx.Timestamp() is the window's end, ctx.Topic() is empty and
// ctx.Offset() is -1; an update is handed out during the Add that made it,
// with that record's context.
type WindowHandler[V, A any] func(ctx *Context[V], r WindowResult[A]) error

// LateError is the error of a record whose every window had closed when it
// arrived: the end of the latest window its time falls in, plus the
// grace, was at or before the partition's stream time (a tumbling window
// of 10s takes a record at 0:05 until stream time reaches 0:10 plus
// grace, not 0:15). A session record is late when it joins no
// open session and its own would have closed; a sliding window record when
// its own window, the one that ends at its time, has closed. Its dead
// letter's kind is "late".
type LateError struct {
	Aggregation string
	Time        time.Time // the record's time
	StreamTime  time.Time // the partition's stream time when it arrived
}

func (e *LateError) Error() string {
	return fmt.Sprintf("window aggregation %s: record at %s is late: stream time is %s and every window it belongs to has closed",
		e.Aggregation, e.Time.UTC().Format(time.RFC3339Nano), e.StreamTime.UTC().Format(time.RFC3339Nano))
}

// windowSpace begins the keys of window rows in a group's table: after it
// come the aggregation's name, a zero byte, the window's end and start
// (sortableTime) and the record key. Rows sort by aggregation and then end,
// so the windows that close or are purged by a stream time are a prefix of
// the aggregation's range: closing is a range scan and purging a range
// deletion. Aggregation names cannot hold a zero byte.
const windowSpace = reservedPrefix + "w"

// windowRowKey is the table key of key's window w of the aggregation name.
func windowRowKey(name, key string, w Window) string {
	b := make([]byte, 0, len(windowSpace)+len(name)+1+16+len(key))
	b = append(b, windowSpace...)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, sortableTime(w.End.UnixNano())...)
	b = append(b, sortableTime(w.Start.UnixNano())...)
	return string(append(b, key...))
}

// windowRange is the range of the rows of aggregation name whose windows
// end before end (Unix nanoseconds): [lo, hi).
func windowRange(name string, end int64) (lo, hi []byte) {
	lo = append(append([]byte(windowSpace), name...), 0)
	hi = append(append([]byte(nil), lo...), sortableTime(end)...)
	return lo, hi
}

// parseWindowRowKey splits a window row's table key into the aggregation's
// name, the record key and the window, or reports that k is not one.
func parseWindowRowKey(k string) (name, key string, w Window, ok bool) {
	rest, found := strings.CutPrefix(k, windowSpace)
	if !found {
		return "", "", Window{}, false
	}
	name, rest, found = strings.Cut(rest, "\x00")
	if !found || len(rest) < 16 {
		return "", "", Window{}, false
	}
	end := int64(binary.BigEndian.Uint64([]byte(rest[:8])) ^ (1 << 63))
	start := int64(binary.BigEndian.Uint64([]byte(rest[8:16])) ^ (1 << 63))
	return name, rest[16:], Window{Start: time.Unix(0, start), End: time.Unix(0, end)}, true
}
