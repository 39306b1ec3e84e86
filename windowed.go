package sluice

// Declaring a windowed aggregation in a group, adding records to it, and
// the time of an input's records. The engine's side, how windows are kept,
// closed and purged, is in enginewindow.go.

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
)

// windowAgg is a windowed aggregation as the engines of its group run it:
// the part of Windowed that does not depend on the message type.
type windowAgg[V any] struct {
	name  string
	w     Windows
	owner any // the *Windowed handle
	// result decodes a window's aggregate and hands it to the handler.
	result func(ctx *Context[V], key string, w Window, raw []byte, final bool) error
	// merge merges two encoded aggregates (session windows).
	merge func(a, b []byte) ([]byte, error)
}

// Windowed is a windowed aggregation of a group, declared with Aggregate: its
// Add and AddAt fold a message into the windows of the key being processed.
type Windowed[M, A any] struct {
	name  string
	w     Windows
	agg   Aggregator[M, A]
	owner any // the *Group that declared it
	index int // in the group's windows
	// byValue: A holds no references, so its encoding cannot share memory
	// with it and needs no copy.
	byValue bool
}

// Name returns the aggregation's name.
func (a *Windowed[M, A]) Name() string { return a.name }

// Windows returns the aggregation's windows.
func (a *Windowed[M, A]) Windows() Windows { return a.w }

// Aggregate declares the windowed aggregation name of the group: the records
// its handles add (Add, AddAt, WindowedInput) are grouped by key and by
// the windows w says their time falls in, each window's records are folded
// into an aggregate with agg, and h receives the results: once per window,
// final, when the window closes, and with EmitUpdates also after every
// change. The windows are rows of the group's table, written with the
// batch to the group's windows topic (Group.WindowsTopic), so they are
// restored, move with their partition and, exactly once, change only with
// committed transactions; a group with windows keeps a table (and its
// changelog topic) even if it does not Persist one. Names are unique in a
// group and hold no zero byte.
//
// A window accepts records while the partition's stream time is before its
// end plus the grace period, and closes (its final result is handed to h)
// when stream time reaches it: before the record that moves stream time
// there, or at a tick with IdleAdvance. A record whose every window has
// closed is late: it fails with a *LateError under the group's error
// policy (dead-letter kind "late"). A closed window is purged from the
// store, with no record of its own in the windows topic (the
// aggregation's purge mark, written in the batch, covers every window
// below it), once stream time reaches its start plus the retention
// (Windows.Retain; default: size plus grace, so at close).
func Aggregate[V, M, A any](g *Group[V], name string, w Windows, agg Aggregator[M, A], h WindowHandler[V, A]) *Windowed[M, A] {
	a := &Windowed[M, A]{name: name, w: w, agg: agg, owner: g, index: -1, byValue: valueSafe(reflect.TypeFor[A]())}
	edge := fmt.Sprintf("window %q", name)
	var errs []string
	switch {
	case name == "":
		errs = append(errs, "name is empty")
	case strings.IndexByte(name, 0) >= 0:
		errs = append(errs, "name holds a zero byte")
	}
	for _, other := range g.windows {
		if other.name == name {
			errs = append(errs, "the group already has a windowed aggregation by that name")
		}
	}
	if err := w.validate(); err != nil {
		errs = append(errs, err.Error())
	}
	var missing []string
	if agg.Init == nil {
		missing = append(missing, "Init")
	}
	if agg.Add == nil {
		missing = append(missing, "Add")
	}
	if agg.Codec == nil {
		missing = append(missing, "Codec")
	}
	switch len(missing) {
	case 0:
	case 1:
		errs = append(errs, "the aggregator needs Init, Add and Codec: "+missing[0]+" is nil")
	default:
		errs = append(errs, "the aggregator needs Init, Add and Codec: "+strings.Join(missing, " and ")+" are nil")
	}
	if w.kind == sessionWindows && agg.Merge == nil {
		errs = append(errs, "session windows need the aggregator's Merge")
	}
	if h == nil {
		errs = append(errs, "handler is nil")
	}
	if len(errs) > 0 {
		g.fail("%s: %s", edge, strings.Join(errs, "; "))
		return a
	}
	if !g.checkOwnTopics(edge, !g.Persisted(), !g.windowLogged()) {
		return a
	}
	a.index = len(g.windows)
	wa := &windowAgg[V]{name: name, w: w, owner: a}
	wa.result = func(ctx *Context[V], key string, win Window, raw []byte, final bool) error {
		v, err := agg.Codec.Decode(raw)
		if err != nil {
			return fmt.Errorf("window %q of key %q: decode aggregate: %w", name, key, err)
		}
		return h(ctx, WindowResult[A]{Key: key, Window: win, Value: v, Final: final})
	}
	if agg.Merge != nil {
		wa.merge = func(x, y []byte) ([]byte, error) {
			av, err := agg.Codec.Decode(x)
			if err != nil {
				return nil, fmt.Errorf("window %q: decode aggregate: %w", name, err)
			}
			bv, err := agg.Codec.Decode(y)
			if err != nil {
				return nil, fmt.Errorf("window %q: decode aggregate: %w", name, err)
			}
			return encodeAggregate(name, agg.Codec, agg.Merge(av, bv), a.byValue)
		}
	}
	g.windows = append(g.windows, wa)
	return a
}

// windowFold folds a record into the aggregate of a window: raw is the
// window's encoded aggregate (ok false for a new window) and kept, if not
// nil, raw decoded, the fold's to change. It returns the new encoded
// aggregate and, for an aggregate that holds references, the new one
// decoded, which the bytes share nothing with, for the next fold.
type windowFold interface {
	fold(raw []byte, ok bool, kept any) ([]byte, any, error)
}

// windowFolder is the windowFold of a record's message for aggregation a.
// The engine's context keeps one per aggregation for the next records
// (recordCtx.folds), so that adding a record allocates no fold: busy while
// it folds, so that a handler of updates that adds again gets a new one.
type windowFolder[M, A any] struct {
	a    *Windowed[M, A]
	msg  M
	p    Point
	busy bool
}

func (f *windowFolder[M, A]) fold(raw []byte, ok bool, kept any) ([]byte, any, error) {
	a := f.a
	var v A
	switch kv, isA := kept.(A); {
	case isA:
		v = kv
	case ok:
		var err error
		if v, err = a.agg.Codec.Decode(raw); err != nil {
			return nil, nil, fmt.Errorf("window %q: decode aggregate: %w", a.name, err)
		}
	default:
		v = a.agg.Init()
	}
	v = a.agg.Add(v, f.msg, f.p)
	raw, err := encodeAggregate(a.name, a.agg.Codec, v, a.byValue)
	if err != nil || a.byValue {
		// An aggregate of values decodes for less than keeping it.
		return raw, nil, err
	}
	return raw, v, nil
}

// folder returns the fold of a for a record handled with rc: the one rc
// keeps, unless it is folding already.
func (a *Windowed[M, A]) folder(rc *recordCtx) *windowFolder[M, A] {
	i := a.index
	if i < len(rc.folds) {
		if f, ok := rc.folds[i].(*windowFolder[M, A]); ok && f.a == a {
			if f.busy {
				return &windowFolder[M, A]{a: a}
			}
			return f
		}
	}
	f := &windowFolder[M, A]{a: a}
	for len(rc.folds) <= i {
		rc.folds = append(rc.folds, nil)
	}
	rc.folds[i] = f
	return f
}

func encodeAggregate[A any](name string, c codec.Codec[A], v A, byValue bool) ([]byte, error) {
	raw, err := c.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("window %q: encode aggregate: %w", name, err)
	}
	if !byValue {
		// The bytes may share memory with v, which the aggregator keeps.
		raw = bytes.Clone(raw)
	}
	return raw, nil
}

// Add folds msg into the windows of the key being processed that contain
// the record's time (its Kafka timestamp, or the time RecordTime gives
// it), as the aggregator's Add at the record's Point. It returns a
// *LateError if every such window has closed, and an error if the time is
// outside the years 1678 to 2262, where windows cannot be kept. An error also fails the
// record, as if its handler had returned it, so a late record is never
// dropped silently. Add works in every handler of the aggregation's group.
func (a *Windowed[M, A]) Add(ctx Ctx, msg M) error {
	rc := ctx.record()
	return a.add(rc, msg, Point{Time: rc.at, Offset: rc.rec.Offset})
}

// AddAt is Add at the time at rather than the record's, for a record that
// holds events of several times. Stream time is still the record's.
func (a *Windowed[M, A]) AddAt(ctx Ctx, msg M, at time.Time) error {
	rc := ctx.record()
	return a.add(rc, msg, Point{Time: at, Offset: rc.rec.Offset})
}

func (a *Windowed[M, A]) add(rc *recordCtx, msg M, p Point) error {
	if a.index < 0 {
		err := fmt.Errorf("window %q was not declared correctly", a.name)
		rc.misuse(err)
		return err
	}
	if p.Time.Before(minTimerTime) || p.Time.After(maxTimerTime) {
		err := fmt.Errorf("window %q: time %v is out of range (%d to %d)", a.name, p.Time, minTimerTime.Year(), maxTimerTime.Year())
		rc.misuse(err)
		return err
	}
	f := a.folder(rc)
	f.msg, f.p, f.busy = msg, p, true
	defer f.done() // also when an aggregator panics
	err := rc.io.addToWindows(a, a.index, rc.key, p, f)
	if err != nil {
		rc.misuse(err)
	}
	return err
}

// done readies f for the next record; the message is the record's.
func (f *windowFolder[M, A]) done() {
	var zero M
	f.msg, f.busy = zero, false
}

// WindowedInput makes the group read topic, decoding each value with c and
// adding it to the aggregation w (as w.Add does) under the record's key,
// at the record's time. w must be the group's own. opts configure the
// input (RecordTime).
func WindowedInput[V, M, A any](g *Group[V], topic string, c codec.Codec[M], w *Windowed[M, A], opts ...InputOpt[M]) {
	if w == nil {
		g.fail("windowed input %s: the aggregation is nil", topic)
		return
	}
	if w.owner != any(g) {
		g.fail("windowed input %s: window %q belongs to another group", topic, w.name)
		return
	}
	Input(g, topic, c, func(ctx *Context[V], msg M) error { return w.Add(ctx, msg) }, opts...)
}

// InputOpt configures one input of a group (Input, WindowedInput).
type InputOpt[M any] interface {
	applyInput(*inputConfig[M])
}

type inputConfig[M any] struct {
	timeOf func(key string, msg M) time.Time
}

type inputOpt[M any] func(*inputConfig[M])

func (f inputOpt[M]) applyInput(c *inputConfig[M]) { f(c) }

// RecordTime makes f give the time of the input's records, from their key
// and decoded value, instead of their Kafka timestamp. That time is the
// record's time for everything: it moves the partition's stream time, so
// timers and the closing of windows follow it, windows take the record by
// it, and ctx.Timestamp() returns it. The value is decoded before stream
// time moves, so a record whose value does not decode leaves stream time
// alone; a time outside the years 1678 to 2262 fails the record. Default:
// the Kafka timestamp.
func RecordTime[M any](f func(key string, msg M) time.Time) InputOpt[M] {
	return inputOpt[M](func(c *inputConfig[M]) { c.timeOf = f })
}

// decodeAtTime is decodeAndHandle for an input with RecordTime: the value
// is decoded, and its time taken, before the handler is called.
func decodeAtTime[V, M any](c codec.Codec[M], timeOf func(string, M) time.Time, h Handler[V, M]) func(*Context[V], *kgo.Record) (int64, func() error, error) {
	return func(ctx *Context[V], r *kgo.Record) (at int64, handle func() error, err error) {
		defer func() {
			if v := recover(); v != nil {
				err = &PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		msg, err := decodeInput(c, r.Value)
		if err != nil {
			return 0, nil, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		t := timeOf(string(r.Key), msg)
		if t.Before(minTimerTime) || t.After(maxTimerTime) {
			return 0, nil, fmt.Errorf("record time %v is out of range (%d to %d)", t, minTimerTime.Year(), maxTimerTime.Year())
		}
		return t.UnixNano(), func() error { return h(ctx, msg) }, nil
	}
}

// WindowError is the error of a windowed aggregation's handler that failed
// on a final result: its dead letter's kind is "window", with the result's
// key and its encoded aggregate as value.
type WindowError struct {
	Group       string
	Partition   int32
	Aggregation string
	Key         string
	Window      Window
	Err         error
	// closedEnd is set for sliding and session windows, whose end is the
	// time of a record in them: [Start, End] rather than [Start, End).
	closedEnd bool
}

func (e *WindowError) Error() string {
	end := ")"
	if e.closedEnd {
		end = "]"
	}
	return fmt.Sprintf("group %s: partition %d: window %q of key %q [%s, %s%s: %v", e.Group, e.Partition, e.Aggregation, e.Key,
		e.Window.Start.UTC().Format(time.RFC3339Nano), e.Window.End.UTC().Format(time.RFC3339Nano), end, e.Err)
}

func (e *WindowError) Unwrap() error { return e.Err }
