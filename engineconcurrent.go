package sluice

// The partition engine's side of concurrent inputs (ConcurrentInput): the
// records of one partition of such an input run in goroutines of their own,
// up to the input's bound, and the engine keeps, in offset order, the
// records it took and has not yet released. A driver hands it records
// (takeConcurrent) as long as it has room, hands back each record a
// goroutine finished (finished), and marks the offsets the engine released.
//
// Invariants:
//   - The driver's goroutine owns the engine's concurrency state; a worker
//     goroutine owns its record's outcome (out, err) until it sends the
//     record on done, which hands it back.
//   - At most limit records of an input run at once, and at most pending are
//     held between the lowest unfinished record and the newest taken.
//   - Ordered, a key has at most one record running, and its records run in
//     offset order: each waits behind the one before it.
//   - A record is released, and its offset may be committed, only once it
//     and every record below it finished; releasing is in offset order. At
//     least once, a finished record's emits are handed out when it finishes;
//     exactly once, when it is released, so that they are written in the
//     transaction that commits its offset.
//   - done has room for every record that can run at once, so a worker never
//     waits to report, even after the engine stopped listening.
//   - A worker's context holds no engine: rows and timers are out of its
//     reach, and its emits go to its record alone.

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// ccRecord is a record of a concurrent input that an engine took.
type ccRecord struct {
	r     *kgo.Record
	key   string
	start time.Time
	// The stream time when it started, for StreamTime.
	stream time.Time
	// The next record of its key, waiting behind it (ordered).
	next     *ccRecord
	finished bool
	// What the handler emitted, or the dead letter of a failed record;
	// and the handler's error. Written by the worker until it reports.
	out []*kgo.Record
	err error
}

// ccInput is the state of one concurrent input in one engine.
type ccInput[V any] struct {
	in      *inputEdge[V]
	conc    *concurrency
	window  []*ccRecord          // taken, not released, in offset order
	tails   map[string]*ccRecord // ordered: the last unfinished record of each busy key
	ready   ccReady              // free to run, lowest offset first
	running int
	// The offset to commit: after the last record released.
	mark  kgo.EpochOffset
	moved bool // mark moved since the driver last read it
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
	// Whether emits wait for the record's release (exactly once).
	hold bool
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
		cc.inputs[topic] = &ccInput[V]{in: in, conc: in.conc, tails: make(map[string]*ccRecord)}
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

// takeConcurrent takes as many of recs, which all come from one partition of
// a concurrent input, as it has room for, in order, and starts those it can.
// It returns how many it took; the driver hands the rest again once a record
// finished. The error is the one that stops the partition (Fail) at a
// record that failed before it could run.
func (e *engine[V]) takeConcurrent(recs []*kgo.Record) (int, error) {
	ci := e.cc.inputs[recs[0].Topic]
	n := min(len(recs), ci.conc.pending-len(ci.window))
	if n <= 0 {
		return 0, nil
	}
	e.m.took(recs[:n])
	for _, r := range recs[:n] {
		if ts := r.Timestamp.UnixNano(); ts > e.stream {
			// Without a table there are no timers to fire.
			e.stream = ts
		}
		c := &ccRecord{r: r, key: string(r.Key)}
		ci.window = append(ci.window, c)
		err := e.checkPlacement(r)
		if err == nil && reservedKey(r.Key) {
			err = errReservedKey
		}
		if err != nil {
			c.err = err
			if ferr := e.finish(ci, c); ferr != nil {
				return n, ferr
			}
			continue
		}
		if ci.conc.unordered {
			heap.Push(&ci.ready, c)
			continue
		}
		if tail := ci.tails[c.key]; tail != nil {
			tail.next = c
		} else {
			heap.Push(&ci.ready, c)
		}
		ci.tails[c.key] = c
	}
	e.startReady(ci)
	return n, nil
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

// run is a worker: it runs the handler of c and hands c back.
func (cc *ccEngine[V]) run(in *inputEdge[V], c *ccRecord, io *ccIO[V], logs *slog.Logger) {
	defer cc.wg.Done()
	ctx := &Context[V]{recordCtx: recordCtx{ctx: cc.ctx, rec: c.r, key: c.key, io: io, logs: logs}}
	err := callConcurrent(in, ctx, c.r)
	if err == nil {
		err = ctx.err
	}
	c.err = err
	cc.done <- c
}

// callConcurrent runs the handler, turning a panic into an error.
func callConcurrent[V any](in *inputEdge[V], ctx *Context[V], r *kgo.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return in.decode(ctx, r.Value)
}

// finished takes back c, which a worker finished: it lets the next record
// of its key run, applies the error policy if c failed, hands out what can
// be, releases what finished below the lowest unfinished record and starts
// what may run. The error is the one that stops the partition (Fail).
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
	if !ci.conc.unordered {
		if c.next != nil {
			heap.Push(&ci.ready, c.next)
		} else if ci.tails[c.key] == c {
			delete(ci.tails, c.key)
		}
	}
	if err := e.finish(ci, c); err != nil {
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
	return nil
}

// release releases the finished records at the bottom of ci's window.
func (e *engine[V]) release(ci *ccInput[V]) {
	n := 0
	for _, c := range ci.window {
		if !c.finished {
			break
		}
		e.out = append(e.out, c.out...)
		ci.mark = kgo.EpochOffset{Epoch: c.r.LeaderEpoch, Offset: c.r.Offset + 1}
		n++
	}
	if n == 0 {
		return
	}
	ci.moved = true
	e.cc.released += n
	clear(ci.window[:n])
	ci.window = ci.window[n:]
	if len(ci.window) == 0 {
		// Reuse the array from its start.
		ci.window = ci.window[:0:0]
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

// concurrentHeld returns how many records of concurrent inputs the engine
// holds: taken and not released.
func (e *engine[V]) concurrentHeld() int {
	if e.cc == nil {
		return 0
	}
	n := 0
	for _, ci := range e.cc.inputs {
		n += len(ci.window)
	}
	return n
}

// stopConcurrent abandons the records the engine holds: the handlers still
// running see their context cancelled, and it returns once they returned.
// Nothing of the abandoned records is handed out or released, so their
// offsets stay uncommitted and whoever resumes the partition runs them
// again. The engine can take records again afterwards, with a new context.
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
		clear(ci.window)
		ci.window = ci.window[:0]
		clear(ci.tails)
		clear(ci.ready)
		ci.ready = ci.ready[:0]
		ci.running = 0
		ci.moved = false
	}
	cc.released = 0
	cc.ctx, cc.cancel = context.WithCancel(cc.parent)
}

// ccReady is a heap of records free to run, lowest offset first, so that
// the lowest unfinished record, which holds back the commit, runs first.
type ccReady []*ccRecord

func (h ccReady) Len() int           { return len(h) }
func (h ccReady) Less(i, j int) bool { return h[i].r.Offset < h[j].r.Offset }
func (h ccReady) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *ccReady) Push(x any)        { *h = append(*h, x.(*ccRecord)) }
func (h *ccReady) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return c
}

// ccIO is the taskIO of a concurrent handler: its emits go to its record,
// and it reads only what no one changes while it runs (the configuration)
// or what is safe for concurrent reads (the joined stores and lookups).
type ccIO[V any] struct {
	cfg   *engineConfig[V]
	joins map[string]store.Store
	c     *ccRecord
}

func (io *ccIO[V]) group() string { return io.cfg.group.name }

func (io *ccIO[V]) emit(owner any, r *kgo.Record) error {
	if owner != any(io.cfg.group) {
		return fmt.Errorf("group %s does not declare output %s (its handle belongs to another group)", io.cfg.group.name, r.Topic)
	}
	io.c.out = append(io.c.out, r)
	return nil
}

func (io *ccIO[V]) joined(topic string) (store.Store, error) {
	st, ok := io.joins[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not join table %s", io.cfg.group.name, topic)
	}
	return st, nil
}

func (io *ccIO[V]) lookup(topic string) (*tableView, error) {
	tv, ok := io.cfg.lookups[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not look up table %s", io.cfg.group.name, topic)
	}
	return tv, nil
}

func (io *ccIO[V]) streamTime() time.Time { return io.c.stream }

// handledFor observes the handler time of one record of topic that began at
// start, for records that did not run in the task's goroutine.
func (m *taskMetrics) handledFor(topic string, start time.Time) {
	if im := m.inputs[topic]; im != nil {
		im.handler.Observe(time.Since(start).Seconds())
	}
}
