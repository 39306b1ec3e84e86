package sluice

// At least once, a task that settles a write does not apply its rows to the
// store at once: the rows wait, pinned in the engine's memory, for the
// writes that follow within applyDelay, and the store gets them all in one
// Apply, a row changed by several of them once, with its latest value. At a
// steady load a write holds what one round trip brought, a few records a
// partition, and a Pebble commit per write, with a memtable insert per
// change of a row that changes again a few milliseconds later, is most of
// what a task costs beyond producing.
//
// Invariants:
//   - Rows wait only once Kafka acknowledged their changelog records, and
//     are applied only while no write is in flight: the engine's pending
//     rows are then exactly those of the settled writes, and the store gets
//     them at the changelog offset they reach, never more.
//   - The input offsets of a write wait with its rows: they are marked only
//     once the store holds what led to them.
//   - Everything that waits for a batch's outcome (a stop, a revoke, a
//     failure, a tick, MaxBatch) applies what waits (settle).
//   - Groups whose engine reads its own store beyond the rows it holds
//     (timers, windows, concurrent inputs) apply every write at once.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxApplyDelay is the longest the rows of a settled write wait to be
// applied with the next writes'.
const maxApplyDelay = 250 * time.Millisecond

// maxApplyRows is the most row changes that wait to be applied: a task
// applies them once that many (or MaxBatch, if fewer) are pending, so that
// the rows pinned for it stay few.
const maxApplyRows = 4096

// appliesLater is what a task's settled writes leave to apply.
type appliesLater struct {
	on    bool // rows or offsets wait
	due   bool // applyDelay passed while a write was in flight
	marks map[string]kgo.EpochOffset
	timer *time.Timer
}

func (a *appliesLater) init() {
	a.marks = make(map[string]kgo.EpochOffset)
	a.timer = time.NewTimer(time.Hour)
	a.timer.Stop()
}

// deferApply has the rows and input offsets (marks) of the write just
// settled wait for the writes of the next delay, or applies them with what
// waits already, when they are due, too many, or the engine cannot have
// them wait.
func (t *task[V]) deferApply(marks map[string]kgo.EpochOffset, delay time.Duration) error {
	if delay <= 0 || !t.e.canDeferApply() {
		if err := t.applyDeferred(); err != nil {
			return err
		}
		return t.applyBatch(marks)
	}
	// A later write's offsets are past an earlier's.
	for topic, eo := range marks {
		t.later.marks[topic] = eo
	}
	if !t.later.on {
		t.later.on = true
		t.later.timer.Reset(delay)
	}
	if t.later.due || len(t.e.pending) >= min(t.h.maxBatch, maxApplyRows) {
		return t.applyDeferred()
	}
	return nil
}

// applyDeferred applies the rows and marks the offsets that wait, if any.
// The task calls it only while no write is in flight.
func (t *task[V]) applyDeferred() error {
	if !t.later.on {
		return nil
	}
	t.later.on, t.later.due = false, false
	t.later.timer.Stop()
	err := t.applyBatch(t.later.marks)
	clear(t.later.marks)
	return err
}

// onApplyDue applies what waited applyDelay, or, while a write is in
// flight, leaves it to that write's settling: the task calls it when
// applyDeadline fired.
func (t *task[V]) onApplyDue() error {
	if t.sent != nil {
		t.later.due = true
		return nil
	}
	return t.applyDeferred()
}

// applyDeadline returns what fires when rows waited applyDelay to be
// applied, nil when none wait or they are due already.
func (t *task[V]) applyDeadline() <-chan time.Time {
	if !t.later.on || t.later.due {
		return nil
	}
	return t.later.timer.C
}
