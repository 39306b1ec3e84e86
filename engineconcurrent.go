package sluice

// The partition engine's side of concurrent inputs (ConcurrentInput): the
// records of one partition of such an input run in goroutines of their own
// (engineconcurrentworker.go), up to the input's bound. A driver hands the
// engine records (handConcurrent), which it queues and takes as it has room;
// hands back each record a worker finished (finished); and writes and marks
// what the engine released. Exactly once, it asks at the end of each
// transaction what to write in it and which offsets to commit
// (concurrentWrite), and tells how it ended (concurrentEnded), both in
// engineconcurrenttxn.go.
//
// Invariants:
//   - The driver's goroutine owns the engine's concurrency state; a worker
//     goroutine owns its record's outcome (out, err) until it sends the
//     record on done, which hands it back.
//   - At most limit records of an input run at once, and at most pending are
//     held between the lowest unfinished record and the newest taken. The
//     released records waiting for their transaction do not count: their
//     room must not wait for the poll loop, which ends the transactions and
//     may itself wait for the task to take the records it hands.
//   - A key has at most perKey records ready or running (no bound if 0),
//     and its records wait for one of them in offset order: with the
//     default bound, 1, they run one at a time in offset order.
//   - A record is released, and its offset may be committed, only once it
//     and every record below it finished; releasing is in offset order. At
//     least once, a finished record's emits are handed out when it finishes;
//     exactly once, when the first transaction after it finished is about
//     to end, so that they are written in the transaction whose offset
//     commit lists it as finished (concurrentmeta.go), or commits its
//     offset. An aborted transaction's are written again in the next one:
//     the records finished, and are not run again.
//   - A record the committed metadata lists as finished is taken as
//     finished without running: its effects are durable already.
//   - Records are handed in offset order; one below the offset after the
//     last one handed is dropped, since the engine has it.
//   - done has room for every record that can run at once, so a worker never
//     waits to report, even after the engine stopped listening.
//   - A worker's context holds no engine: rows and timers are out of its
//     reach, and its emits go to its record alone.

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ccRecord is a record of a concurrent input that an engine took.
type ccRecord struct {
	r     *kgo.Record
	key   string
	start time.Time
	// The stream time when it started, for StreamTime.
	stream   time.Time
	finished bool
	// What the handler emitted, or the dead letter of a failed record;
	// and the handler's error. Written by the worker until it reports.
	out []*kgo.Record
	err error
}

// ccInput is the state of one concurrent input in one engine.
type ccInput[V any] struct {
	in   *inputEdge[V]
	conc *concurrency
	// Records handed to the engine and not yet taken, in offset order,
	// and the offset after the last record handed (-1 before the first).
	queue []*kgo.Record
	next  int64
	// Taken and not released, in offset order.
	window []*ccRecord
	keys   map[string]*ccKey // with a bound per key: the keys with records ready or running
	ready  ccReady           // free to run, lowest offset first
	// Exactly once, the records released and not yet written, and those
	// written in the open transaction.
	unwritten, written int
	running            int
	// The offset to commit: after the last record released.
	mark   kgo.EpochOffset
	marked bool // a record was released
	moved  bool // mark moved since the driver last read it
	noted  bool // mark moved since the driver last noted it
	// A record finished above the lowest unfinished one since the driver
	// last noted what finished (concurrentNotes).
	above bool
	// The records the committed metadata lists as finished, which the
	// engine skips (resumeConcurrent), ascending.
	skip []ccRange
}

// ccKey is a key with records ready or running, under a bound per key: how
// many, and the records waiting for one of them to finish, in offset order.
type ccKey struct {
	active  int
	waiting []*ccRecord
}

// ccEngine is an engine's state of its concurrent inputs.
type ccEngine[V any] struct {
	inputs map[string]*ccInput[V] // by topic
	done   chan *ccRecord
	parent context.Context
	ctx    context.Context // what handlers see; cancelled by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// Records released since the driver last asked.
	released int
	// The size of the queued records, as MaxBufferedBytes counts it.
	queuedBytes int64
	// Exactly once, emits wait for the release of their record and then
	// for the end of the transaction: unwritten is what the next one
	// writes, written what the open one holds, kept until it commits.
	hold               bool
	unwritten, written []*kgo.Record
}

// newCCEngine returns the concurrency state of e, or nil if its group has no
// concurrent input.
func newCCEngine[V any](e *engine[V]) *ccEngine[V] {
	var cc *ccEngine[V]
	room := 0
	for topic, in := range e.cfg.inputs {
		if in.conc == nil {
			continue
		}
		if cc == nil {
			cc = &ccEngine[V]{inputs: make(map[string]*ccInput[V]), parent: e.baseCtx, hold: e.cfg.holdConcurrentEmits}
		}
		cc.inputs[topic] = &ccInput[V]{in: in, conc: in.conc, next: -1, keys: make(map[string]*ccKey)}
		room += in.conc.limit
	}
	if cc != nil {
		cc.done = make(chan *ccRecord, room)
		cc.ctx, cc.cancel = context.WithCancel(cc.parent)
	}
	return cc
}

// isConcurrent reports whether topic is a concurrent input of e.
func (e *engine[V]) isConcurrent(topic string) bool {
	return e.cc != nil && e.cc.inputs[topic] != nil
}

// concurrentDone returns the channel on which the records the workers
// finished come back; nil (never ready) without concurrent inputs.
func (e *engine[V]) concurrentDone() <-chan *ccRecord {
	if e.cc == nil {
		return nil
	}
	return e.cc.done
}

// handConcurrent queues recs, which all come from one partition of a
// concurrent input, and takes what it has room for. Records below the
// offset after the last one handed are dropped: a consumer that rewinds
// after an aborted transaction fetches again records the engine holds. The
// error is the one that stops the partition (Fail) at a record that failed
// before it could run.
func (e *engine[V]) handConcurrent(recs []*kgo.Record) error {
	ci := e.cc.inputs[recs[0].Topic]
	for _, r := range recs {
		if r.Offset < ci.next {
			continue
		}
		ci.next = r.Offset + 1
		ci.queue = append(ci.queue, r)
		e.cc.queuedBytes += recordBytes(r)
	}
	return e.fill(ci)
}

// fill takes queued records of ci while it has room, and starts those it
// can.
func (e *engine[V]) fill(ci *ccInput[V]) error {
	n := min(len(ci.queue), ci.conc.pending-len(ci.window))
	if n <= 0 || e.cc.ctx.Err() != nil {
		return nil
	}
	recs := ci.queue[:n]
	e.m.took(recs)
	var err error
	for i, r := range recs {
		e.cc.queuedBytes -= recordBytes(r)
		if err = e.take(ci, r); err != nil {
			// Fail stops the partition: the rest are not taken.
			n = i + 1
			break
		}
	}
	clear(ci.queue[:n])
	ci.queue = ci.queue[n:]
	if len(ci.queue) == 0 {
		ci.queue = nil
	}
	if err != nil {
		return err
	}
	e.startReady(ci)
	return nil
}

// take adds r to ci's window, behind the record of its key if one is busy.
func (e *engine[V]) take(ci *ccInput[V], r *kgo.Record) error {
	if ts, ok := streamNanos(r.Timestamp); ok && ts > e.stream {
		// Without a table there are no timers to fire.
		e.stream = ts
	}
	c := &ccRecord{r: r, key: string(r.Key)}
	ci.window = append(ci.window, c)
	if ci.skipped(r.Offset) {
		// Finished before the partition was resumed, its effects
		// durable: only its offset is left to commit.
		c.finished = true
		e.release(ci)
		return nil
	}
	err := e.checkPlacement(r)
	if err == nil && reservedKey(r.Key) {
		err = errReservedKey
	}
	if err != nil {
		c.err = err
		return e.finish(ci, c)
	}
	if ci.conc.perKey == 0 {
		heap.Push(&ci.ready, c)
		return nil
	}
	k := ci.keys[c.key]
	if k == nil {
		k = &ccKey{}
		ci.keys[c.key] = k
	}
	if k.active < ci.conc.perKey {
		k.active++
		heap.Push(&ci.ready, c)
	} else {
		k.waiting = append(k.waiting, c)
	}
	return nil
}

// startReady starts the ready records of ci, lowest offset first, while
// fewer than its bound run.
func (e *engine[V]) startReady(ci *ccInput[V]) {
	cc := e.cc
	if cc.ctx.Err() != nil {
		return // stopping: nothing new starts
	}
	for ci.running < ci.conc.limit && ci.ready.Len() > 0 {
		c := heap.Pop(&ci.ready).(*ccRecord)
		ci.running++
		c.start = time.Now()
		c.stream = e.streamTime()
		cc.wg.Add(1)
		go cc.run(ci.in, c, &ccIO[V]{cfg: e.cfg, joins: e.joins, c: c}, e.logs)
	}
}

// finished takes back c, which a worker finished: it lets the next record
// of its key run, applies the error policy if c failed, hands out what can
// be, releases what finished below the lowest unfinished record and takes
// and starts what may run. The error is the one that stops the partition
// (Fail).
func (e *engine[V]) finished(c *ccRecord) error {
	ci := e.cc.inputs[c.r.Topic]
	ci.running--
	if c.err != nil && e.cc.ctx.Err() != nil {
		// Its handler was cancelled, the partition is being let go:
		// the record is abandoned, not failed, and stays unfinished,
		// so that nothing above it is released.
		return nil
	}
	if e.m.timed {
		e.m.handledFor(c.r.Topic, c.start)
	}
	if k := ci.keys[c.key]; k != nil {
		if len(k.waiting) > 0 {
			// The next of the key takes c's place.
			heap.Push(&ci.ready, k.waiting[0])
			k.waiting[0] = nil
			k.waiting = k.waiting[1:]
		} else if k.active--; k.active == 0 {
			delete(ci.keys, c.key)
		}
	}
	if err := e.finish(ci, c); err != nil {
		return err
	}
	if err := e.fill(ci); err != nil {
		return err
	}
	e.startReady(ci)
	return nil
}

// finish settles the outcome of c and releases what it can.
func (e *engine[V]) finish(ci *ccInput[V], c *ccRecord) error {
	c.finished = true
	if c.err != nil {
		// A record's emits leave only once its handler succeeded.
		clear(c.out)
		c.out = c.out[:0]
		rerr := &RecordError{Group: e.cfg.group.name, Topic: c.r.Topic, Partition: c.r.Partition, Offset: c.r.Offset, Key: c.key, Err: c.err}
		e.cfg.metrics.recordFailed(e.partition, e.cfg.policy.kind, rerr)
		from := len(e.out)
		err := e.onFailure([]*kgo.Record{c.r}, rerr)
		c.out = append(c.out, e.out[from:]...)
		clear(e.out[from:])
		e.out = e.out[:from]
		if err != nil {
			return err
		}
	}
	if !e.cc.hold {
		e.out = append(e.out, c.out...)
		c.out = nil
	}
	e.release(ci)
	if len(ci.window) > 0 && ci.window[0] != c {
		ci.above = true
	}
	return nil
}

// release releases the finished records at the bottom of ci's window.
func (e *engine[V]) release(ci *ccInput[V]) {
	n := 0
	for _, c := range ci.window {
		if !c.finished {
			break
		}
		if e.cc.hold {
			e.cc.unwritten = append(e.cc.unwritten, c.out...)
			ci.unwritten++
		}
		ci.mark = kgo.EpochOffset{Epoch: c.r.LeaderEpoch, Offset: c.r.Offset + 1}
		n++
	}
	if n == 0 {
		return
	}
	ci.marked, ci.moved, ci.noted = true, true, true
	e.cc.released += n
	clear(ci.window[:n])
	ci.window = ci.window[n:]
	if len(ci.window) == 0 {
		// The next append starts a new array rather than growing past
		// the released records.
		ci.window = nil
	}
}

// concurrentReleased returns how many records were released since the last
// call, and calls mark with the offset to commit of each input whose
// released records moved it.
func (e *engine[V]) concurrentReleased(mark func(topic string, eo kgo.EpochOffset)) int {
	if e.cc == nil {
		return 0
	}
	for topic, ci := range e.cc.inputs {
		if ci.moved {
			ci.moved = false
			mark(topic, ci.mark)
		}
	}
	n := e.cc.released
	e.cc.released = 0
	return n
}

// concurrentQueued returns the size of the records handed to the engine and
// not yet taken, as MaxBufferedBytes counts it.
func (e *engine[V]) concurrentQueued() int64 {
	if e.cc == nil {
		return 0
	}
	return e.cc.queuedBytes
}

// concurrentHeld returns how many records of concurrent inputs the engine
// holds: handed and not released.
func (e *engine[V]) concurrentHeld() int {
	if e.cc == nil {
		return 0
	}
	n := 0
	for _, ci := range e.cc.inputs {
		n += len(ci.queue) + len(ci.window)
	}
	return n
}

// concurrentBusy reports whether the engine holds records of concurrent
// inputs that a transaction has yet to commit: unreleased, or released and
// not committed.
func (e *engine[V]) concurrentBusy() bool {
	if e.cc == nil {
		return false
	}
	for _, ci := range e.cc.inputs {
		if len(ci.queue) > 0 || len(ci.window) > 0 || ci.unwritten > 0 || ci.written > 0 {
			return true
		}
	}
	return false
}

// stopConcurrent abandons the records the engine holds: the handlers still
// running see their context cancelled, and it returns once they returned.
// Nothing of the abandoned records is handed out or released, so their
// offsets stay uncommitted and whoever resumes the partition runs them
// again. The engine can take records again afterwards, with a new context,
// from any offset.
func (e *engine[V]) stopConcurrent() {
	cc := e.cc
	if cc == nil {
		return
	}
	cc.cancel()
	cc.wg.Wait()
	for {
		select {
		case <-cc.done:
			continue
		default:
		}
		break
	}
	for _, ci := range cc.inputs {
		clear(ci.queue)
		ci.queue = ci.queue[:0]
		ci.next = -1
		clear(ci.window)
		ci.window = ci.window[:0]
		clear(ci.keys)
		clear(ci.ready)
		ci.ready = ci.ready[:0]
		ci.running, ci.unwritten, ci.written = 0, 0, 0
		ci.marked, ci.moved, ci.noted, ci.above = false, false, false, false
		ci.skip = nil
	}
	cc.released, cc.queuedBytes = 0, 0
	cc.unwritten, cc.written = nil, nil
	cc.ctx, cc.cancel = context.WithCancel(cc.parent)
}
