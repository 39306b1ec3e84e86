package sluice

// How a task goes on with the next records while Kafka acknowledges the
// batch it wrote last. The records a task produces belong to a write: the
// open one, which takes the outputs of the records being processed, and,
// once a batch is written, the one in flight, which holds everything the
// batch produced (its outputs, then its changelog records) and the input
// offsets it completes. A task writes a batch by settling the write in
// flight, then sealing the open one with the batch's changelog records: the
// sealed write is in flight while the next records are processed. The
// batch in hand is not written before the write in flight settles (unless
// it reaches MaxBatch): its outputs leave at once, and its rows and offsets
// wait, so that batches grow with Kafka's round trip, as they did when a
// task waited for it, and the store gets one write per round trip. Once the
// write in flight settled, the batch is written with the outputs of the
// next records to arrive (or after idleWriteDelay without any), not on the
// acknowledgement: the tasks are woken by the same produce response, and
// each writing then would make one more produce request of its own.
//
// Invariants:
//   - At most one write is in flight. It is settled (at least once, its
//     rows applied to the store and its offsets marked, or left to wait
//     with them, see applydefer.go) before the next batch's changelog
//     records are made, so the engine's pending rows are always those of
//     the write in flight and of the settled writes that wait: the store
//     gets them once none is in flight, at the changelog offset they
//     reach, and never more.
//   - The rows of the write in flight stay pinned in the engine's memory
//     (rows.go), so the next records read the values it wrote.
//   - A write is settled only once Kafka acknowledged every record it holds
//     and none failed: its offsets are never marked before its effects are
//     durable. A failure fails the task, and the offsets stay unmarked.
//   - Only the task's goroutine opens, seals and settles writes; the
//     client's promises only count their records down and wake the task
//     when a sealed write has none left.

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// idleWriteDelay is how long the batch in hand, once the write before it
// settled, waits for more records to be written with: records that keep
// arriving write it sooner.
const idleWriteDelay = 5 * time.Millisecond

// taskWrite is the records of a task produced and not yet acknowledged, and the
// input offsets that may be marked once they are.
type taskWrite struct {
	// left counts the records produced and not yet acknowledged, plus
	// one until the write is sealed, so that it reaches zero only once
	// the write is sealed and all its records acknowledged.
	left    atomic.Int64
	promise func(*kgo.Record, error)
	err     atomic.Pointer[produceError] // the first of its records that failed
	marks   map[string]kgo.EpochOffset   // by input topic
}

// initWrites readies the task's two writes: one open, none in flight.
func (t *task[V]) initWrites() {
	for i := range t.writes {
		w := &t.writes[i]
		w.left.Store(1)
		w.promise = func(r *kgo.Record, err error) { t.onProduced(w, r, err) }
		w.marks = make(map[string]kgo.EpochOffset)
	}
	t.filling = &t.writes[0]
	t.marks = t.filling.marks
	t.acked = make(chan struct{}, 1)
	t.ackTimer = time.NewTimer(time.Hour)
	t.ackTimer.Stop()
	t.idleTimer = time.NewTimer(time.Hour)
	t.idleTimer.Stop()
	t.later.init()
}

// produce hands r to the client, in the open write: at once, or with the
// records of the other tasks of the same poll (producegate.go).
func (t *task[V]) produce(r *kgo.Record) {
	if r.Topic != t.lastTopic {
		if !slices.Contains(t.writing, r.Topic) {
			t.writing = append(t.writing, r.Topic)
		}
		t.lastTopic = r.Topic
	}
	w := t.filling
	w.left.Add(1)
	t.h.gate.produce(t.cl, r, w.promise)
}

// produceEffects produces the records the engine's processed records asked
// to write, and lets go of them: the engine reuses its slice of them, which
// would otherwise keep them alive after Kafka acknowledged them, until
// records of a later call overwrote them, and with them the fetched input
// batches their keys share bytes with (see emitEncoded).
func (t *task[V]) produceEffects() {
	effects := t.e.effects()
	for _, r := range effects {
		t.produce(r)
	}
	clear(effects)
}

// onProduced is the promise of every record the task produces in w. It runs
// in the client's goroutines.
func (t *task[V]) onProduced(w *taskWrite, r *kgo.Record, err error) {
	if err != nil {
		w.err.CompareAndSwap(nil, &produceError{topic: r.Topic, partition: r.Partition, err: err})
	} else if r.Topic == t.table {
		advance(&t.changelogEnd, r.Offset+1)
	} else if r.Topic == t.windows && t.windows != "" {
		advance(&t.windowsEnd, r.Offset+1)
	}
	if w.left.Add(-1) == 0 {
		select {
		case t.acked <- struct{}{}:
		default: // the task has a wake-up waiting already
		}
	}
}

// initChangelogEnds starts the changelog offsets that the store's next
// checkpoint records at the restored ones: a batch that writes to one of
// the topics only records the other's as it is.
func (t *task[V]) initChangelogEnds() error {
	off, err := t.st.Offset()
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	t.changelogEnd.Store(max(off, 0))
	if t.windows == "" {
		return nil
	}
	if off, err = windowsOffset(t.st); err != nil {
		return err
	}
	t.windowsEnd.Store(max(off, 0))
	return nil
}

// advance moves end up to next, if next is later.
func advance(end *atomic.Int64, next int64) {
	for e := end.Load(); next > e; e = end.Load() {
		if end.CompareAndSwap(e, next) {
			return
		}
	}
}

// writeAhead writes the batch in hand and goes on without waiting for it:
// it settles the write in flight, produces the batch's changelog records
// and seals the open write, which is in flight until settled. A task writes
// a batch this way when nothing waits for its outcome but the next batch.
func (t *task[V]) writeAhead() error {
	if err := t.settleSent(); err != nil {
		return err
	}
	if t.idleArmed {
		t.idleArmed = false
		t.idleTimer.Stop()
	}
	for _, r := range t.e.endBatch() {
		t.produce(r)
	}
	t.m.wrote(t.batched)
	t.batched = 0
	w := t.filling
	t.filling = &t.writes[0]
	if w == t.filling {
		t.filling = &t.writes[1]
	}
	t.marks = t.filling.marks
	t.sent = w
	if w.left.Add(-1) == 0 {
		// Nothing to wait for: every record is acknowledged already.
		return t.settleSent()
	}
	t.ackTimer.Reset(t.h.ackTimeout)
	return nil
}

// settle waits until Kafka acknowledged every record of the write in
// flight, if there is one, and hands it to the delivery guarantee, which
// applies its rows and marks its offsets (at least once), with those of the
// writes settled before that wait (applydefer.go). A record of it that
// failed, or a wait that gave up, fails the task: its offsets stay
// unmarked. The records of the open write are not its: a write that
// settles is not failed by the next one's.
func (t *task[V]) settle() error {
	if err := t.settleSent(); err != nil {
		return err
	}
	return t.applyDeferred()
}

// settleSent is settle for a task that goes on writing: the rows of the
// write may wait to be applied with the next writes'.
func (t *task[V]) settleSent() error {
	w := t.sent
	if w == nil {
		return nil
	}
	if err := t.awaitWrite(w, 0, t.ackTimer.C); err != nil {
		return err
	}
	t.ackTimer.Stop()
	if perr := w.err.Load(); perr != nil {
		return fmt.Errorf("group %s: partition %d: produce to %s: %w%s", t.h.group, t.partition, perr.where(), perr.err, timedOutHint(perr.err))
	}
	t.sent = nil
	// Everything the engine's changelog records were written in is
	// acknowledged: the open write holds none.
	t.e.changelogAcked()
	err := t.h.written(t, w.marks)
	clear(w.marks)
	w.left.Store(1)
	return err
}

// onAcked settles the write in flight if Kafka acknowledged all of it: the
// task calls it when a promise woke it. The batch that grew meanwhile is
// written with the next records' outputs (writeBatch), so that a task
// produces once per delivery rather than once per delivery and once per
// acknowledgement; if no records come within idleWriteDelay, it is written
// then (onIdle).
func (t *task[V]) onAcked() error {
	if t.sent == nil || t.sent.left.Load() != 0 {
		return nil
	}
	if err := t.settleSent(); err != nil {
		return err
	}
	if t.batched > 0 && !t.idleArmed {
		t.idleArmed = true
		t.idleTimer.Reset(idleWriteDelay)
	}
	return nil
}

// writeBatch writes the batch in hand after the task processed what
// arrived, unless a write is in flight that Kafka has not yet acknowledged
// (the batch then keeps growing until it has).
func (t *task[V]) writeBatch() error {
	if t.batched == 0 {
		return nil
	}
	if t.sent != nil {
		if t.sent.left.Load() != 0 {
			return nil
		}
		// Acknowledged since: the wake-up it sent finds nothing to do.
		if err := t.settleSent(); err != nil {
			return err
		}
	}
	return t.writeAhead()
}

// onIdle writes the batch in hand that no records followed since the write
// before it settled: the task calls it when idleDeadline fired.
func (t *task[V]) onIdle() error {
	t.idleArmed = false
	return t.writeBatch()
}

// idleDeadline returns what fires when the batch in hand waited
// idleWriteDelay for records to be written with, nil when none waits.
func (t *task[V]) idleDeadline() <-chan time.Time {
	if !t.idleArmed {
		return nil
	}
	return t.idleTimer.C
}

// sentDeadline returns what fires when the write in flight waited too long
// for Kafka, nil when none is in flight.
func (t *task[V]) sentDeadline() <-chan time.Time {
	if t.sent == nil {
		return nil
	}
	return t.ackTimer.C
}

// waitAcknowledged waits until Kafka has acknowledged, or failed, every
// record the task produced, in flight or in the open write, without
// settling anything. It is how a task that
// abandons its work lets its records go.
func (t *task[V]) waitAcknowledged() error {
	timer := time.NewTimer(t.h.ackTimeout)
	defer timer.Stop()
	if t.sent != nil {
		if err := t.awaitWrite(t.sent, 0, timer.C); err != nil {
			return err
		}
	}
	// Sealed for the wait, so that its last record wakes the task;
	// dropWrites opens it again.
	if t.filling.left.Add(-1) != 0 {
		if err := t.awaitWrite(t.filling, 0, timer.C); err != nil {
			return err
		}
	}
	clear(t.writing)
	t.writing, t.lastTopic = t.writing[:0], ""
	return nil
}

// dropWrites forgets the writes, once waitAcknowledged returned: their
// records are acknowledged or failed, and their offsets are not to be
// marked.
func (t *task[V]) dropWrites() {
	t.ackTimer.Stop()
	t.idleTimer.Stop()
	t.idleArmed = false
	t.later.timer.Stop()
	t.later.on, t.later.due = false, false
	clear(t.later.marks)
	for i := range t.writes {
		w := &t.writes[i]
		clear(w.marks)
		w.left.Store(1)
		w.err.Store(nil)
	}
	t.sent = nil
}

// awaitWrite waits until w has left records unacknowledged (0: all
// acknowledged). The client
// fails a record at the delivery timeout, but not one it sent to a broker
// that never answered, which it retries for as long as it takes; so the
// wait gives up itself when deadline fires (the delivery and produce
// request timeouts after the records were written), or when the processor
// abandons its writes, and then returns an error naming the topics written.
// Records are still in flight after that: the task must not produce again.
func (t *task[V]) awaitWrite(w *taskWrite, left int64, deadline <-chan time.Time) error {
	if t.unacked != nil {
		return t.unacked
	}
	if w.left.Load() != left {
		// Its records may be waiting for other tasks.
		t.h.gate.send()
	}
	for w.left.Load() != left {
		var why string
		select {
		case <-t.acked:
			continue
		case <-deadline:
			why = fmt.Sprintf("not acknowledged within %v (the delivery timeout and the produce request timeout)", t.h.ackTimeout)
		case <-t.h.writeCtx.Done():
			why = "abandoned by the stop at its shutdown timeout; the partition's next owner processes their input again"
		}
		t.unacked = t.unackedError(why)
		return t.unacked
	}
	return nil
}

// ackTimedOut fails the task whose write in flight waited too long for
// Kafka: the task calls it when sentDeadline fired.
func (t *task[V]) ackTimedOut() error {
	if t.sent == nil || t.sent.left.Load() == 0 {
		return t.onAcked()
	}
	t.unacked = t.unackedError(fmt.Sprintf("not acknowledged within %v (the delivery timeout and the produce request timeout)", t.h.ackTimeout))
	return t.unacked
}

func (t *task[V]) unackedError(why string) error {
	topics := make([]string, len(t.writing))
	for i, topic := range t.writing {
		topics[i] = topic
		if topic == t.table || topic == t.windows {
			topics[i] = fmt.Sprintf("%s/%d", topic, t.partition)
		}
	}
	return fmt.Errorf("group %s: partition %d: writes to %s %s", t.h.group, t.partition, strings.Join(topics, ", "), why)
}
