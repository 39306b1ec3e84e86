package sluice

// Event time and timers: what a handler sees of its partition's stream time
// and how it sets the per-key timers that OnTimer's handler fires. The
// engine's side, how timers are kept and fired, is in enginetimer.go.

import (
	"fmt"
	"time"
)

// Timer is a timer that fired: its name, the time it was set for and
// whether that time was on the wall clock (SetWallTimer) rather than stream
// time (SetTimer).
type Timer struct {
	Name string
	Time time.Time
	Wall bool
}

// TimerHandler handles a timer of a key: ctx holds the key's row, as in an
// input handler, so Value, SetValue, Delete, emits and loopbacks work alike,
// and its effects are written and committed like a record's. In a timer
// handler, ctx.Timestamp() is the timer's time, ctx.Topic() is empty and
// ctx.Offset() is -1. A returned error or a panic is a failure under the
// group's error policy: the handler's effects are undone; Skip and
// DeadLetter (error kind "timer", the timer's name as value) drop the timer,
// Fail stops the partition and the timer fires again once it restarts.
type TimerHandler[V any] func(ctx *Context[V], t Timer) error

// TimerError is the error of a timer whose handler failed.
type TimerError struct {
	Group     string
	Partition int32
	Key       string
	Timer     Timer
	Err       error
}

func (e *TimerError) Error() string {
	kind := "event-time"
	if e.Timer.Wall {
		kind = "wall-clock"
	}
	return fmt.Sprintf("group %s: partition %d: %s timer %q of key %q at %s: %v", e.Group, e.Partition, kind, e.Timer.Name, e.Key, e.Timer.Time.UTC().Format(time.RFC3339Nano), e.Err)
}

func (e *TimerError) Unwrap() error { return e.Err }

// OnTimer makes h the handler of the group's timers, which handlers set
// with SetTimer and SetWallTimer. Timers are kept in the group's table, so
// the group must Persist one. A group has at most one timer handler; batch
// groups have none.
//
// Event-time timers fire by the partition's stream time, the largest record
// timestamp the partition has seen (see Context.StreamTime): before a record
// is processed, stream time becomes the larger of itself and the record's
// timestamp, and then every event-time timer set for a time at or before
// stream time fires, in order of time (ties in a fixed order of key and
// name), before the record's handler runs. A timer set for a time stream
// time has already reached, by a record or by a timer handler, fires at the
// next such point: before the next record, or at the next tick. Wall-clock
// timers fire once the wall clock reaches their time: the processor checks
// every 100 ms, between records. A timer fires once; a handler re-arms it by
// setting it again.
func OnTimer[V any](g *Group[V], h TimerHandler[V]) {
	switch {
	case h == nil:
		g.fail("timers: handler is nil")
	case g.onTimer != nil:
		g.fail("timers: the group already has a timer handler")
	default:
		g.onTimer = h
	}
}

// StreamTime returns the stream time of the record's partition: the largest
// record timestamp its task has seen, including the record being processed,
// or the zero time before the first record. It never moves back: a record
// older than stream time is late and leaves it alone, and so does a
// timestamp outside the years 1678 to 2262, which stream time, kept in Unix
// nanoseconds, cannot hold (a windowed aggregation refuses such a record's
// time: see Windowed.Add). With IdleAdvance it
// also moves with the wall clock while the partition receives nothing.
//
// A group with a timer handler (OnTimer) or windowed aggregations
// (Aggregate) keeps stream time in its table with each batch, so that after a restart or a rebalance it is what the last
// committed batch left. For other groups it is kept in memory: a task starts
// it anew from the first record it processes.
func (c *recordCtx) StreamTime() time.Time { return c.io.streamTime() }

// SetTimer sets the timer called name of the key being processed to fire
// when the partition's stream time reaches at, replacing any timer of the
// key by that name, event-time or wall-clock. The timer is written with the
// batch, so it survives a restart and moves with its partition. It needs a
// timer handler (OnTimer), and at must lie between the years 1678 and 2262
// (Unix nanoseconds); the record fails otherwise.
func (c *Context[V]) SetTimer(name string, at time.Time) {
	if c.e == nil {
		c.misuse(errConcurrentRow)
		return
	}
	if err := c.e.setTimer(c.key, name, eventTimer, at); err != nil {
		c.misuse(err)
	}
}

// SetWallTimer sets the timer called name of the key being processed to
// fire when the wall clock reaches at, replacing any timer of the key by
// that name, event-time or wall-clock. It is kept like SetTimer's.
func (c *Context[V]) SetWallTimer(name string, at time.Time) {
	if c.e == nil {
		c.misuse(errConcurrentRow)
		return
	}
	if err := c.e.setTimer(c.key, name, wallTimer, at); err != nil {
		c.misuse(err)
	}
}

// CancelTimer removes the timer called name of the key being processed, if
// it has one.
func (c *Context[V]) CancelTimer(name string) {
	if c.e == nil {
		c.misuse(errConcurrentRow)
		return
	}
	if err := c.e.cancelTimer(c.key, name); err != nil {
		c.misuse(err)
	}
}

// IdleAdvance lets a partition's stream time follow the wall clock once the
// partition has received no record for d: from then on, until a record
// comes, stream time is the stream time at the last record plus the wall
// time elapsed since that record was processed, so that event-time timers
// fire and windows close (Aggregate) when input stops. A record that comes
// afterwards with an older timestamp is late and does not move stream time
// back. Default: 0, off: stream time moves only with records.
func IdleAdvance(d time.Duration) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.idleAdvance = d })
}
