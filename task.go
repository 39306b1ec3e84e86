package sluice

// A task processes one partition number of a group: the records of partition
// p of every input, with partition p of the group's table. It is the Kafka
// driver of the partition engine (engine.go): it feeds the engine the
// records fetched, produces the effects the engine returns, waits for Kafka
// to acknowledge them, tells the engine (applied, discarded) and marks the
// input offsets. What a record does is the engine's; the task does the I/O.
//
// Invariants:
//   - One goroutine (run) owns the task, its engine and its store.
//   - The engine's changelog records are produced after the effects that
//     led to them, and the engine applies its rows to the store only once
//     they are acknowledged (at least once) or committed (exactly once).
//   - Input offsets are marked for commit only after the batch's changelog
//     and output records are acknowledged and the store is updated.
//   - A batch written while records keep arriving is in flight while the
//     next records are processed (pipeline.go); every other write (a stop,
//     a failure, a tick, a transaction's end, a batch group's batch) waits
//     for the batch's outcome before the task goes on.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

type task[V any] struct {
	h         *taskHost[V]
	cl        *kgo.Client
	partition int32

	in       chan delivery
	stop     chan struct{}
	stopOnce sync.Once
	flushOut atomic.Bool // whether to write the batch in hand when stopping
	done     chan struct{}
	active   atomic.Bool // restored and processing
	m        taskMetrics
	redone   atomic.Int64 // records handed to it in aborted transactions
	// A tick wrote something the poll loop has not yet heard of.
	tickWrote atomic.Bool

	// Where restoring the table ended, kept for Stats once the reader has
	// let go of the partition.
	restoreOffset, restoreEnd, restored atomic.Int64

	st         store.Store
	joinStores map[string]store.Store
	table      string // the changelog topic
	logs       *slog.Logger
	// The partition engine: what the records do. Made once the stores are
	// open; the task feeds it and writes what it returns.
	e       *engine[V]
	batched int // records processed since the last flush
	// The input offsets the batch in hand completes: the open write's.
	marks map[string]kgo.EpochOffset

	// Records produced and not yet acknowledged (pipeline.go): the open
	// write (filling) and the one in flight (sent, nil if none); acked wakes
	// the task when a sealed write has nothing left unacknowledged, and
	// ackTimer fires when the one in flight waited too long.
	writes        [2]taskWrite
	filling, sent *taskWrite
	acked         chan struct{}
	ackTimer      *time.Timer
	// idleTimer fires when the batch in hand waited idleWriteDelay for
	// records to be written with (idleArmed: it runs).
	idleTimer *time.Timer
	idleArmed bool
	// The rows and offsets of settled writes that wait to be applied
	// with the next writes' (applydefer.go).
	later appliesLater
	// The offsets to mark, by topic and partition, reused.
	markBuf map[string]map[int32]kgo.EpochOffset
	// Whether it marked everything it was handed (idlecommit.go).
	input idleInput
	idle  atomic.Bool

	// The outcome of the changelog records produced.
	changelogEnd atomic.Int64 // offset after the last acknowledged changelog record
	// The same for the windows topic (windows, "" without one).
	windows    string
	windowsEnd atomic.Int64
	// The topics written to, to name them if a wait for
	// acknowledgements times out; lastTopic spares the search when the
	// topic does not change.
	writing   []string
	lastTopic string
	unacked   error // why a wait for acknowledgements gave up, if one did

	batch batchState // batch processors only

	// Concurrent inputs (taskconcurrent.go): the bytes queued in the
	// engine, counted in the input budget; whether the engine holds records a
	// transaction has yet to commit, for the poll loop; and the offsets
	// the transaction about to end commits, set by prepare; and what the
	// partitions of concurrent inputs resume from (concurrentresume.go).
	ccQueued int64
	ccBusy   atomic.Bool
	ccMu     sync.Mutex
	ccCommit map[string]ccCommit
	ccResume map[string]ccResume
}

func newTask[V any](h *taskHost[V], cl *kgo.Client, partition int32) *task[V] {
	t := &task[V]{
		h:          h,
		cl:         cl,
		partition:  partition,
		in:         make(chan delivery, 16),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		joinStores: make(map[string]store.Store),
		markBuf:    make(map[string]map[int32]kgo.EpochOffset),
		table:      h.table,
		windows:    h.windows,
		logs:       h.logger.With("partition", partition),
	}
	t.initWrites()
	t.input.init()
	t.idle.Store(true)
	t.m.init(h.metrics, partition, h.inputTopics)
	return t
}

// engineConfig is what the processor's partition engines share.
func (p *Processor[V]) engineConfig() *engineConfig[V] {
	cfg := &engineConfig[V]{
		group:              p.g,
		inputs:             p.inputs,
		policy:             p.cfg.policy,
		cacheRows:          p.cfg.cacheRows,
		logger:             p.logger,
		lookups:            p.lookups,
		hasher:             p.cfg.client.hasher,
		placement:          &p.placement,
		strictPartitioning: p.cfg.strictPartitioning,
		metrics:            p.metrics,
		skipped:            &p.skipped,
		deadLettered:       &p.deadLettered,
		now:                time.Now,
		idleAdvance:        p.cfg.idleAdvance,

		holdConcurrentEmits: p.cfg.guarantee == ExactlyOnce,
	}
	if p.cfg.batch.runner != nil {
		cfg.batch = &p.cfg.batch
	}
	return cfg
}

func (t *task[V]) requestStop(flush bool) {
	t.stopOnce.Do(func() {
		t.flushOut.Store(flush)
		close(t.stop)
	})
}

func (t *task[V]) run() {
	defer t.drop()
	defer close(t.done)
	// Before done: no resume held back is made once the task stopped.
	defer t.h.resumes.forget(t)
	err := t.open()
	switch {
	case err == nil:
		t.e = newEngine(t.h.engine, enginePartition{partition: t.partition, table: t.st, windows: t.windows, joins: t.joinStores, metrics: &t.m, ctx: t.h.ctx, reuseChangelog: true})
		t.active.Store(true)
		t.resumeConcurrent()
		t.resume()
		if t.h.batch.runner != nil {
			err = t.batchLoop()
		} else {
			err = t.loop()
		}
		if errors.Is(err, errStopping) {
			err = nil
		}
		// Records a concurrent input queued and never started give
		// back their room in the processor's input budget.
		t.h.input.release(t.ccQueued)
		t.ccQueued = 0
	case errors.Is(err, errStoppedOpening):
		err = nil
	}
	if cerr := t.close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.h.fail(err)
	}
}

// errStoppedOpening is what open returns when the task was told to stop, or
// the processor is stopping, before the task was ready.
var errStoppedOpening = errors.New("stopped while opening")

// open opens the stores and restores the table and joined tables. Asked to
// stop meanwhile (a revocation, a graceful stop), it returns
// errStoppedOpening whatever the step in progress made of the cancellation:
// a stop is no failure, and the partition's next owner restores it anew.
func (t *task[V]) open() error {
	ctx, cancel := context.WithCancel(t.h.ctx)
	defer cancel()
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := t.restoreTables(ctx)
	if err != nil && ctx.Err() != nil {
		return errStoppedOpening
	}
	return err
}

// resume lets the consumer fetch the task's partitions, with those of the
// tasks restoring along with it (see resumegate.go).
func (t *task[V]) resume() {
	parts := make(map[string][]int32, len(t.h.inputTopics))
	for _, topic := range t.h.inputTopics {
		parts[topic] = []int32{t.partition}
	}
	t.h.resumes.restored(t, t.cl, parts)
}

func (t *task[V]) loop() error {
	for {
		select {
		case <-t.stop:
			// The write in flight is the one a task that waited for
			// Kafka would be waiting for: its outcome is known before
			// the task stops, and a write that failed fails the
			// processor, whether or not the batch in hand is written.
			return t.settle()
		case c := <-t.e.concurrentDone():
			if err := t.onFinished(c); err != nil {
				return err
			}
		case <-t.acked:
			if err := t.onAcked(); err != nil {
				return err
			}
		case <-t.sentDeadline():
			if err := t.ackTimedOut(); err != nil {
				return err
			}
		case <-t.idleDeadline():
			if err := t.onIdle(); err != nil {
				return err
			}
		case <-t.applyDeadline():
			if err := t.onApplyDue(); err != nil {
				return err
			}
		case d := <-t.in:
			if err := t.turn(d); err != nil {
				return err
			}
		}
	}
}

// turn handles d and what else is waiting, then writes the batch. The
// deliveries count in the produce gate until after the write, so that the
// changelog records it produces leave with the outputs (producegate.go).
func (t *task[V]) turn(d delivery) error {
	gated := 0
	var err error
	for {
		err = t.handle(d)
		t.h.input.release(d.bytes)
		if d.gated {
			gated++
		}
		if err != nil {
			break
		}
		// Take what else is waiting before writing the batch, so that
		// batches grow with the load.
		var more bool
		select {
		case d, more = <-t.in:
		default:
		}
		if !more {
			// While a write is in flight the batch keeps growing:
			// its outputs are produced already, and its rows and
			// offsets are written once the write before settles,
			// so that batches grow with Kafka's round trip as they
			// did when the task waited for it, and nothing waits.
			err = t.writeBatch()
			break
		}
	}
	if gated > 0 {
		t.h.gate.taken(gated)
	}
	return err
}

func (t *task[V]) handle(d delivery) error {
	if !d.tick.IsZero() {
		return t.onTick(d.tick)
	}
	if d.step == nil {
		t.tookInput(d)
		return t.take(d.recs)
	}
	var err error
	switch d.step.kind {
	case prepare:
		if t.writeConcurrent() || t.batched > 0 {
			err = t.flush()
		} else {
			err = t.settle()
		}
	case committed:
		if err = t.applyPending(); err == nil {
			err = t.concurrentEnded(true)
		}
	case aborted:
		if err = t.discardPending(); err == nil {
			err = t.concurrentEnded(false)
		}
	}
	d.step.done <- err
	return err
}

// take processes records of one topic partition, flushing whenever the
// batch reaches MaxBatch records.
func (t *task[V]) take(recs []*kgo.Record) error {
	if t.e.isConcurrent(recs[0].Topic) {
		return t.handConcurrent(recs)
	}
	maxBatch := t.h.maxBatch
	for len(recs) > 0 {
		n := min(maxBatch-t.batched, len(recs))
		if err := t.process(recs[:n]); err != nil {
			return err
		}
		t.batched += n
		recs = recs[n:]
		if t.batched >= maxBatch {
			if err := t.writeAhead(); err != nil {
				return err
			}
		}
	}
	return nil
}

// process hands recs, which all come from one topic partition, to the
// engine and produces their effects at once. If the error policy stops at a
// record, what came before it is written and marked, and the record is not.
func (t *task[V]) process(recs []*kgo.Record) error {
	done, err := t.e.process(t.h.ctx, recs)
	t.produceEffects()
	if err != nil {
		// Stop at the failed record, keeping what came before it.
		r := recs[done]
		t.marks[r.Topic] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
		if errors.Is(err, errStopping) {
			// What came before is the batch in hand, which the stop
			// writes or drops as it does any (close).
			t.batched += done
			return err
		}
		if ferr := t.flush(); ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	}
	if done > 0 {
		last := recs[done-1]
		t.marks[last.Topic] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
	}
	return nil
}

// flush writes the batch and waits for its outcome: the changed rows are
// produced to the changelog and every record of the batch is acknowledged.
// At least once, the store is then updated and the input offsets marked for
// commit; exactly once, both wait for the transaction to commit.
func (t *task[V]) flush() error {
	if err := t.writeAhead(); err != nil {
		return err
	}
	return t.settle()
}

// applyBatch applies the written batch's rows to the store and marks marks,
// its input offsets, for commit.
func (t *task[V]) applyBatch(marks map[string]kgo.EpochOffset) error {
	if err := t.applyPending(); err != nil {
		return err
	}
	if len(marks) == 0 {
		return nil
	}
	// The client copies the offsets: the maps are reused, holding only
	// this batch's topics.
	for topic := range t.markBuf {
		if _, ok := marks[topic]; !ok {
			delete(t.markBuf, topic)
		}
	}
	for topic, eo := range marks {
		m := t.markBuf[topic]
		if m == nil {
			m = make(map[int32]kgo.EpochOffset, 1)
			t.markBuf[topic] = m
		}
		m[t.partition] = eo
	}
	t.cl.MarkCommitOffsets(t.markBuf)
	t.markedInput(marks)
	return nil
}

// applyPending writes the row changes whose changelog records are durable
// to the store, with the changelog offset they reach, in one atomic step.
func (t *task[V]) applyPending() error {
	if t.windows != "" {
		return t.e.appliedAt(t.changelogEnd.Load(), t.windowsEnd.Load())
	}
	return t.e.applied(t.changelogEnd.Load())
}

// discardPending forgets the row changes of an aborted transaction: the
// store still holds the committed rows. It fails only if records of the
// transaction are still in flight.
func (t *task[V]) discardPending() error {
	if err := t.waitAcknowledged(); err != nil {
		return err
	}
	t.dropWrites()
	t.e.discarded()
	t.batched = 0
	return nil
}

// close drops or writes the batch in hand and closes the stores.
func (t *task[V]) close() error {
	// Records still running are abandoned, uncommitted.
	t.stopConcurrent()
	var err error
	switch {
	case t.flushOut.Load() && t.batched > 0:
		err = t.flush()
	case t.flushOut.Load():
		// The batch in flight is written and marked like the one in hand.
		err = t.settle()
	default:
		if werr := t.waitAcknowledged(); werr != nil {
			// Dropped records may still be in flight; their outcome
			// no longer matters, and a promise that comes later
			// touches nothing but the task's counters.
			t.logs.Warn("dropped writes still unacknowledged at stop", "err", werr)
		}
	}
	for topic, st := range t.joinStores {
		t.h.joins[topic].remove(t.partition)
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if t.st != nil {
		if t.h.restore != nil {
			t.h.restore.remove(t.partition)
		}
		if t.h.winRestore != nil {
			t.h.winRestore.remove(t.partition)
		}
		if cerr := t.st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("group %s: close store of partition %d: %w", t.h.group, t.partition, cerr)
		}
	}
	return err
}
