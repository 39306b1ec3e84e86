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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

type task[V any] struct {
	p         *Processor[V]
	cl        *kgo.Client
	partition int32

	in       chan []*kgo.Record
	stop     chan struct{}
	stopOnce sync.Once
	flushOut atomic.Bool // whether to write the batch in hand when stopping
	done     chan struct{}

	st         store.Store
	joinStores map[string]store.Store
	rows       map[string]*row[V]
	dirty      []string
	out        []*kgo.Record
	marks      map[string]kgo.EpochOffset
	ctx        Context[V]
}

// row is a table row as the task sees it: the value a handler set (dirty) or
// the encoded value from the store (clean).
type row[V any] struct {
	val    V
	raw    []byte
	exists bool
	dirty  bool
}

func newTask[V any](p *Processor[V], cl *kgo.Client, partition int32) *task[V] {
	t := &task[V]{
		p:          p,
		cl:         cl,
		partition:  partition,
		in:         make(chan []*kgo.Record, 16),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		joinStores: make(map[string]store.Store),
		rows:       make(map[string]*row[V]),
		marks:      make(map[string]kgo.EpochOffset),
	}
	t.ctx.t = t
	t.ctx.io = t
	t.ctx.logs = p.logger.With("partition", partition)
	return t
}

// deliver hands records to the task; it returns at once if the task stopped.
func (t *task[V]) deliver(recs []*kgo.Record) {
	select {
	case t.in <- recs:
	case <-t.done:
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
		t.resume()
		err = t.loop()
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
		ready, err := p.restore.add(ctx, t.partition, st)
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
		ready, err := r.add(ctx, t.partition, st)
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
		p.restore.remove(t.partition)
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
	maxBatch := t.p.cfg.maxBatch
	for {
		select {
		case <-t.stop:
			return nil
		case recs := <-t.in:
			n := len(recs)
			if err := t.process(recs); err != nil {
				return err
			}
		more:
			for n < maxBatch {
				select {
				case recs := <-t.in:
					n += len(recs)
					if err := t.process(recs); err != nil {
						return err
					}
				default:
					break more
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
}

func (t *task[V]) process(recs []*kgo.Record) error {
	c := &t.ctx
	for _, r := range recs {
		in := t.p.inputs[r.Topic]
		if in == nil {
			continue
		}
		c.ctx = t.p.ctx
		c.rec = r
		c.key = string(r.Key)
		c.err = nil
		err := t.call(in, r)
		if err == nil {
			err = c.err
		}
		if err != nil {
			return &RecordError{Group: t.p.g.name, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: c.key, Err: err}
		}
		t.marks[r.Topic] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	}
	return nil
}

// call runs the handler, turning a panic into an error.
func (t *task[V]) call(in *inputEdge[V], r *kgo.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return in.decode(&t.ctx, r.Value)
}

// flush makes the batch's effects durable: changelog and output records are
// produced and acknowledged, the store is updated, and the input offsets are
// marked for commit.
func (t *task[V]) flush() error {
	p := t.p
	var changes []store.Change
	if len(t.dirty) > 0 {
		changes = make([]store.Change, 0, len(t.dirty))
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
			changes = append(changes, store.Change{Key: []byte(key), Value: raw})
			t.out = append(t.out, &kgo.Record{Topic: p.g.TableTopic(), Partition: t.partition, Key: []byte(key), Value: raw})
		}
	}
	var changelogEnd int64 = -1
	if len(t.out) > 0 {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		table := p.g.TableTopic()
		wg.Add(len(t.out))
		for _, r := range t.out {
			t.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
				}
				if err == nil && r.Topic == table && r.Offset+1 > changelogEnd {
					changelogEnd = r.Offset + 1
				}
				mu.Unlock()
				wg.Done()
			})
		}
		wg.Wait()
		if firstErr != nil {
			return fmt.Errorf("group %s: partition %d: %w", p.g.name, t.partition, firstErr)
		}
	}
	if len(changes) > 0 {
		if err := t.st.Apply(changes, changelogEnd); err != nil {
			return fmt.Errorf("group %s: partition %d: store: %w", p.g.name, t.partition, err)
		}
		for _, c := range changes {
			r := t.rows[string(c.Key)]
			var zero V
			r.val, r.raw, r.dirty = zero, c.Value, false
		}
	}
	if len(t.marks) > 0 {
		marks := make(map[string]map[int32]kgo.EpochOffset, len(t.marks))
		for topic, eo := range t.marks {
			marks[topic] = map[int32]kgo.EpochOffset{t.partition: eo}
		}
		t.cl.MarkCommitOffsets(marks)
		clear(t.marks)
	}
	clear(t.out)
	t.out = t.out[:0]
	t.dirty = t.dirty[:0]
	if len(t.rows) > p.cfg.cacheRows {
		clear(t.rows)
	}
	return nil
}

// close drops or writes the batch in hand and closes the stores.
func (t *task[V]) close() error {
	var err error
	if t.flushOut.Load() && (len(t.marks) > 0 || len(t.out) > 0 || len(t.dirty) > 0) {
		err = t.flush()
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
	r := &row[V]{raw: raw, exists: err == nil}
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

func (t *task[V]) emit(r *kgo.Record) error {
	if _, ok := t.p.g.outputs[r.Topic]; !ok {
		if in := t.p.inputs[r.Topic]; in == nil || !in.loop {
			return fmt.Errorf("group %s does not declare output %s", t.p.g.name, r.Topic)
		}
	}
	t.out = append(t.out, r)
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
