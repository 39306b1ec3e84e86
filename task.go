package sluice

// A task processes one partition number of a group: the records of partition
// p of every input, with partition p of the group's table.
//
// Invariants:
//   - One goroutine (run) owns the task's rows, store and pending effects.
//   - Rows changed by a batch live only in the rows map until the batch's
//     changelog records are acknowledged; the store is then updated in one
//     atomic Apply that records the changelog offset. So the store never
//     holds a row the changelog does not, and restoring from the store's
//     checkpoint is always correct.
//   - Input offsets are marked for commit only after the batch's changelog
//     and output records are acknowledged and the store is updated.

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

type task[V any] struct {
	p         *Processor[V]
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

	// Where restoring the table ended, kept for Stats once the reader has
	// let go of the partition.
	restoreOffset, restoreEnd, restored atomic.Int64

	st         store.Store
	joinStores map[string]store.Store
	table      string // the changelog topic
	rows       map[string]*row[V]
	dirty      []string
	batched    int           // records processed since the last flush
	emitted    []*kgo.Record // emits of the record being processed

	// What the record being processed changed, to undo it if it fails.
	undo        map[string]undoEntry[V]
	recordDirty int // len(dirty) when the record started
	marks       map[string]kgo.EpochOffset
	ctx         Context[V]
	pending     []store.Change // written to the changelog, not yet to the store

	// Records produced and not yet acknowledged, and their outcome.
	inflight     sync.WaitGroup
	promise      func(*kgo.Record, error)
	produceErr   atomic.Pointer[produceError]
	changelogEnd atomic.Int64 // offset after the last acknowledged changelog record

	batch batchState // batch processors only
}

// undoEntry is a row as it was before the record being processed changed
// it; existed is false when the row was not in the rows map.
type undoEntry[V any] struct {
	row     row[V]
	existed bool
}

// row is a table row as the task sees it: the value a handler set (dirty) or
// the encoded value from the store (clean).
type row[V any] struct {
	val    V
	raw    []byte
	exists bool
	dirty  bool
	stored bool // the store holds the key, as far as the task knows
}

func newTask[V any](p *Processor[V], cl *kgo.Client, partition int32) *task[V] {
	t := &task[V]{
		p:          p,
		cl:         cl,
		partition:  partition,
		in:         make(chan delivery, 16),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		joinStores: make(map[string]store.Store),
		rows:       make(map[string]*row[V]),
		undo:       make(map[string]undoEntry[V]),
		marks:      make(map[string]kgo.EpochOffset),
		table:      p.g.TableTopic(),
	}
	t.promise = t.onProduced
	t.m.init(p.metrics, partition, p.g.inputTopics())
	t.ctx.t = t
	t.ctx.io = t
	t.ctx.logs = p.logger.With("partition", partition)
	return t
}

// delivery is what the poll loop hands a task: records of one topic
// partition with its high water mark, or a step of the transaction protocol.
type delivery struct {
	recs []*kgo.Record
	hwm  int64
	step *txnStep
}

// txnStep asks a task to take part in ending a transaction, and carries its
// answer.
type txnStep struct {
	kind txnStepKind
	done chan error
}

type txnStepKind int

const (
	// prepare: write the batch in hand, so that everything the task did
	// is produced and acknowledged in the transaction.
	prepare txnStepKind = iota
	// committed: the transaction committed; apply its row changes to the
	// store.
	committed
	// aborted: the transaction aborted; forget its row changes.
	aborted
)

// deliver hands records to the task; it returns at once if the task stopped.
func (t *task[V]) deliver(recs []*kgo.Record, hwm int64) {
	select {
	case t.in <- delivery{recs: recs, hwm: hwm}:
	case <-t.done:
	}
}

// step runs one step of ending a transaction in the task, after the records
// delivered before it. A task that stopped has nothing to add: its work is
// either in the transaction already or aborted with it.
func (t *task[V]) step(kind txnStepKind) error {
	s := &txnStep{kind: kind, done: make(chan error, 1)}
	select {
	case t.in <- delivery{step: s}:
	case <-t.done:
		return nil
	}
	select {
	case err := <-s.done:
		return err
	case <-t.done:
		return nil
	}
}

func (t *task[V]) requestStop(flush bool) {
	t.stopOnce.Do(func() {
		t.flushOut.Store(flush)
		close(t.stop)
	})
}

func (t *task[V]) run() {
	defer close(t.done)
	err := t.open()
	if err == nil {
		t.active.Store(true)
		t.resume()
		if t.p.cfg.batch.runner != nil {
			err = t.batchLoop()
		} else {
			err = t.loop()
		}
	}
	if cerr := t.close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.p.fail(err)
	}
}

// open opens the stores and restores the table and joined tables.
func (t *task[V]) open() error {
	p := t.p
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var readies []func() error
	if p.g.Persisted() {
		st, err := p.cfg.storage(p.g.TableTopic(), t.partition)
		if err != nil {
			return fmt.Errorf("group %s: open store of partition %d: %w", p.g.name, t.partition, err)
		}
		t.st = st
		readyOf, err := p.restore.add(ctx, map[int32]store.Store{t.partition: st})
		ready := readyOf[t.partition]
		if err != nil && ctx.Err() != nil {
			return nil // stopping: nothing to restore for
		}
		if err != nil {
			return fmt.Errorf("group %s: restore partition %d: %w", p.g.name, t.partition, err)
		}
		readies = append(readies, func() error { return p.restore.waitReady(ctx, ready) })
	}
	for _, j := range p.g.joins {
		st, err := p.cfg.storage(p.g.name+"."+j.topic+".join", t.partition)
		if err != nil {
			return fmt.Errorf("group %s: open store of join %s/%d: %w", p.g.name, j.topic, t.partition, err)
		}
		t.joinStores[j.topic] = st
		r := p.joins[j.topic]
		readyOf, err := r.add(ctx, map[int32]store.Store{t.partition: st})
		ready := readyOf[t.partition]
		if err != nil {
			return fmt.Errorf("group %s: join %s: %w", p.g.name, j.topic, err)
		}
		readies = append(readies, func() error { return r.waitReady(ctx, ready) })
	}
	for _, wait := range readies {
		if err := wait(); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("group %s: partition %d: %w", p.g.name, t.partition, err)
		}
	}
	if t.st != nil {
		// The task writes the table from now on.
		off, end, n, _ := p.restore.progress(t.partition)
		t.restoreOffset.Store(off)
		t.restoreEnd.Store(end)
		t.restored.Store(n)
		p.restore.remove(t.partition)
		if err := t.m.countRows(t.st); err != nil {
			return fmt.Errorf("group %s: count rows of partition %d: %w", p.g.name, t.partition, err)
		}
	}
	return nil
}

// resume lets the consumer fetch the task's partitions.
func (t *task[V]) resume() {
	parts := make(map[string][]int32, len(t.p.g.inputs))
	for _, in := range t.p.g.inputs {
		parts[in.topic] = []int32{t.partition}
	}
	t.cl.ResumeFetchPartitions(parts)
}

func (t *task[V]) loop() error {
	for {
		select {
		case <-t.stop:
			return nil
		case d := <-t.in:
			if err := t.handle(d); err != nil {
				return err
			}
			// Take what else is waiting before writing the batch, so
			// that batches grow with the load.
		more:
			for {
				select {
				case d := <-t.in:
					if err := t.handle(d); err != nil {
						return err
					}
				default:
					break more
				}
			}
			if t.batched > 0 {
				if err := t.flush(); err != nil {
					return err
				}
			}
		}
	}
}

func (t *task[V]) handle(d delivery) error {
	if d.step == nil {
		return t.take(d.recs)
	}
	var err error
	switch d.step.kind {
	case prepare:
		if t.batched > 0 {
			err = t.flush()
		}
	case committed:
		err = t.applyPending()
	case aborted:
		t.discardPending()
	}
	d.step.done <- err
	return err
}

// take processes records of one topic partition, flushing whenever the
// batch reaches MaxBatch records.
func (t *task[V]) take(recs []*kgo.Record) error {
	maxBatch := t.p.cfg.maxBatch
	for len(recs) > 0 {
		n := min(maxBatch-t.batched, len(recs))
		if err := t.process(recs[:n]); err != nil {
			return err
		}
		t.batched += n
		recs = recs[n:]
		if t.batched >= maxBatch {
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// process runs the handler of recs, which all come from one topic
// partition.
func (t *task[V]) process(recs []*kgo.Record) error {
	in := t.p.inputs[recs[0].Topic]
	if in == nil {
		return nil
	}
	c := &t.ctx
	c.ctx = t.p.ctx
	t.m.took(recs)
	for _, r := range recs {
		c.rec = r
		c.key = string(r.Key)
		c.err = nil
		t.recordDirty = len(t.dirty)
		err := t.call(in, r)
		if err == nil {
			err = c.err
		}
		if err != nil {
			if err := t.failed(r, err); err != nil {
				// Stop at the failed record, keeping what came before it.
				clear(t.emitted)
				t.emitted = t.emitted[:0]
				t.marks[r.Topic] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
				if ferr := t.flush(); ferr != nil {
					return errors.Join(err, ferr)
				}
				return err
			}
		} else {
			// A record's emits leave only once its handler succeeded.
			for _, out := range t.emitted {
				t.produce(out)
			}
		}
		clear(t.emitted)
		t.emitted = t.emitted[:0]
		if len(t.undo) > 0 {
			clear(t.undo)
		}
	}
	last := recs[len(recs)-1]
	t.marks[last.Topic] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
	return nil
}

// failed undoes what the failed record r changed and applies the error
// policy; it returns the error that stops the task under Fail.
func (t *task[V]) failed(r *kgo.Record, err error) error {
	t.undoRecord()
	rerr := &RecordError{Group: t.p.g.name, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: t.ctx.key, Err: err}
	t.p.metrics.recordFailed(t.partition, t.p.cfg.policy.kind, rerr)
	switch policy := t.p.cfg.policy; policy.kind {
	case skipPolicy:
		t.p.skipped.Add(1)
		t.ctx.logs.Warn("record skipped", "err", rerr)
		return nil
	case deadLetterPolicy:
		t.p.deadLettered.Add(1)
		t.ctx.logs.Warn("record dead-lettered", "to", policy.topic, "err", rerr)
		t.produce(deadLetter(policy.topic, t.p.g.name, r, rerr))
		return nil
	default:
		return rerr
	}
}

// saveUndo remembers the row of key as it was before the current record
// first changed it.
func (t *task[V]) saveUndo(key string, r *row[V], existed bool) {
	if _, ok := t.undo[key]; ok {
		return
	}
	u := undoEntry[V]{existed: existed}
	if existed {
		u.row = *r
	}
	t.undo[key] = u
}

// undoRecord puts back the rows the current record changed.
func (t *task[V]) undoRecord() {
	for key, u := range t.undo {
		if u.existed {
			*t.rows[key] = u.row
		} else {
			delete(t.rows, key)
		}
	}
	// Keys first made dirty by this record were appended after
	// recordDirty.
	t.dirty = t.dirty[:t.recordDirty]
}

// call runs the handler, turning a panic into an error.
func (t *task[V]) call(in *inputEdge[V], r *kgo.Record) (err error) {
	if t.m.timed {
		defer t.m.handled(time.Now())
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return in.decode(&t.ctx, r.Value)
}

// produce hands r to the client at once; flush waits for the outcome.
func (t *task[V]) produce(r *kgo.Record) {
	t.inflight.Add(1)
	t.cl.Produce(t.p.writeCtx, r, t.promise)
}

// onProduced is the promise of every record the task produces.
func (t *task[V]) onProduced(r *kgo.Record, err error) {
	if err != nil {
		t.produceErr.CompareAndSwap(nil, &produceError{topic: r.Topic, err: err})
	} else if r.Topic == t.table {
		for end := t.changelogEnd.Load(); r.Offset+1 > end; end = t.changelogEnd.Load() {
			if t.changelogEnd.CompareAndSwap(end, r.Offset+1) {
				break
			}
		}
	}
	t.inflight.Done()
}

type produceError struct {
	topic string
	err   error
}

// flush writes the batch: the changed rows are produced to the changelog and
// every record of the batch is acknowledged. At least once, the store is then
// updated and the input offsets marked for commit; exactly once, both wait
// for the transaction to commit.
func (t *task[V]) flush() error {
	if err := t.writeBatch(); err != nil {
		return err
	}
	if t.p.exactlyOnce() {
		return nil
	}
	if err := t.applyPending(); err != nil {
		return err
	}
	if len(t.marks) > 0 {
		marks := make(map[string]map[int32]kgo.EpochOffset, len(t.marks))
		for topic, eo := range t.marks {
			marks[topic] = map[int32]kgo.EpochOffset{t.partition: eo}
		}
		t.cl.MarkCommitOffsets(marks)
		clear(t.marks)
	}
	return nil
}

// writeBatch produces the changed rows, waits until everything the batch
// produced is acknowledged, and keeps the row changes for the store.
func (t *task[V]) writeBatch() error {
	p := t.p
	for _, key := range t.dirty {
		r := t.rows[key]
		var raw []byte
		if r.exists {
			b, err := p.g.table.Encode(r.val)
			if err != nil {
				return fmt.Errorf("group %s: encode row %q: %w", p.g.name, key, err)
			}
			raw = b
		}
		k := []byte(key)
		t.pending = append(t.pending, store.Change{Key: k, Value: raw})
		var zero V
		r.val, r.raw, r.dirty = zero, raw, false
		r.stored = t.m.rowWritten(r.stored, r.exists)
		t.produce(&kgo.Record{Topic: t.table, Partition: t.partition, Key: k, Value: raw})
	}
	t.dirty = t.dirty[:0]
	t.m.wrote(t.batched)
	t.batched = 0
	t.inflight.Wait()
	if perr := t.produceErr.Load(); perr != nil {
		return fmt.Errorf("group %s: partition %d: produce to %s: %w", p.g.name, t.partition, perr.topic, perr.err)
	}
	return nil
}

// applyPending writes the row changes whose changelog records are durable
// to the store, with the changelog offset they reach, in one atomic step.
func (t *task[V]) applyPending() error {
	if len(t.pending) > 0 {
		if err := t.st.Apply(t.pending, t.changelogEnd.Load()); err != nil {
			return fmt.Errorf("group %s: partition %d: store: %w", t.p.g.name, t.partition, err)
		}
		clear(t.pending)
		t.pending = t.pending[:0]
		t.m.applied()
	}
	if len(t.rows) > t.p.cfg.cacheRows {
		clear(t.rows)
	}
	return nil
}

// discardPending forgets the row changes of an aborted transaction: the
// store still holds the committed rows, and the cached rows may be newer.
func (t *task[V]) discardPending() {
	t.inflight.Wait()
	t.produceErr.Store(nil)
	t.pending = nil
	t.m.discarded()
	t.dirty = t.dirty[:0]
	t.batched = 0
	clear(t.rows)
	clear(t.marks)
}

// close drops or writes the batch in hand and closes the stores.
func (t *task[V]) close() error {
	var err error
	if t.flushOut.Load() && t.batched > 0 {
		err = t.flush()
	} else {
		// Dropped records may still be in flight; their outcome no longer
		// matters, but the promises must not outlive the task.
		t.inflight.Wait()
	}
	for topic, st := range t.joinStores {
		t.p.joins[topic].remove(t.partition)
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if t.st != nil {
		if t.p.restore != nil {
			t.p.restore.remove(t.partition)
		}
		if cerr := t.st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("group %s: close store of partition %d: %w", t.p.g.name, t.partition, cerr)
		}
	}
	return err
}

// value returns the row of key.
func (t *task[V]) value(key string) (V, bool, error) {
	var zero V
	r, err := t.load(key)
	if err != nil || !r.exists {
		return zero, false, err
	}
	if r.dirty {
		return r.val, true, nil
	}
	v, err := t.p.g.table.Decode(r.raw)
	if err != nil {
		return zero, false, fmt.Errorf("decode row %q of %s: %w", key, t.p.g.TableTopic(), err)
	}
	return v, true, nil
}

func (t *task[V]) load(key string) (*row[V], error) {
	if r, ok := t.rows[key]; ok {
		return r, nil
	}
	if t.st == nil {
		return nil, fmt.Errorf("group %s has no table: declare one with Persist", t.p.g.name)
	}
	raw, err := t.st.Get([]byte(key))
	t.m.storeGet()
	r := &row[V]{raw: raw, exists: err == nil, stored: err == nil}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("read row %q: %w", key, err)
	}
	t.rows[key] = r
	return r, nil
}

func (t *task[V]) setValue(key string, v V, exists bool) error {
	if t.st == nil {
		return fmt.Errorf("group %s has no table: declare one with Persist", t.p.g.name)
	}
	r, ok := t.rows[key]
	t.saveUndo(key, r, ok)
	if !ok {
		r = &row[V]{}
		t.rows[key] = r
	}
	if !r.dirty {
		t.dirty = append(t.dirty, key)
	}
	r.val, r.raw, r.exists, r.dirty = v, nil, exists, true
	return nil
}

// taskIO

func (t *task[V]) group() string { return t.p.g.name }

func (t *task[V]) emit(owner any, r *kgo.Record) error {
	if owner != any(t.p.g) {
		return fmt.Errorf("group %s does not declare output %s (its handle belongs to another group)", t.p.g.name, r.Topic)
	}
	t.emitted = append(t.emitted, r)
	return nil
}

func (t *task[V]) joined(topic string) (store.Store, error) {
	st, ok := t.joinStores[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not join table %s", t.p.g.name, topic)
	}
	return st, nil
}

func (t *task[V]) lookup(topic string) (*tableView, error) {
	tv, ok := t.p.lookups[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not look up table %s", t.p.g.name, topic)
	}
	return tv, nil
}
