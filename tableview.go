package sluice

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/store"
)

// errViewNotReady is what a view query answers before the view serves rows.
var errViewNotReady = errors.New("view is not running yet")

// notServing is the error of a query while the view serves no rows: not
// yet, or no more once Run has returned. tv.mu is held.
func (tv *tableView) notServing() error {
	switch s := ViewState(tv.state.Load()); s {
	case ViewClosed:
		return fmt.Errorf("view %s: %w: its Run has returned", tv.topic, ErrClosed)
	case ViewIdle:
		return fmt.Errorf("view %s: %w: call Run, and WaitReady for the table to be restored", tv.topic, errViewNotReady)
	default:
		return fmt.Errorf("view %s: %w (%s); WaitReady returns once it is", tv.topic, errViewNotReady, s)
	}
}

// tableView is the untyped core of a view: one store per partition, filled by
// a tableReader. Processors use it directly for Lookup tables.
type tableView struct {
	topic string
	cfg   viewConfig
	name  string // store name, so a view and a processor never share a store

	state   atomic.Int32
	ready   chan struct{}
	runErr  atomic.Pointer[error]
	stopped chan struct{}

	mu     sync.RWMutex
	stores []store.Store

	// The reader while Run copies the table, and the partition count; read
	// by Stats.
	reader     atomic.Pointer[tableReader]
	partitions atomic.Int32
}

func newTableView(topic string, cfg viewConfig) *tableView {
	return &tableView{topic: topic, cfg: cfg, name: topic + ".view", ready: make(chan struct{}), stopped: make(chan struct{})}
}

func (tv *tableView) run(ctx context.Context) (err error) {
	if !tv.state.CompareAndSwap(int32(ViewIdle), int32(ViewWaiting)) {
		return fmt.Errorf("view %s: Run called twice", tv.topic)
	}
	defer func() {
		if err != nil {
			tv.runErr.Store(&err)
		}
		tv.state.Store(int32(ViewClosed))
		close(tv.stopped)
	}()
	r, err := newTableReader(&tv.cfg.client, tv.cfg.client.logger.With("view", tv.name), tv.topic)
	if err != nil {
		return err
	}
	defer r.close()
	n, err := tv.waitForTopic(ctx, r)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil // ctx is done
	}
	tv.state.Store(int32(ViewRestoring))
	stores := make([]store.Store, n)
	defer func() {
		tv.mu.Lock()
		tv.stores = nil
		tv.state.Store(int32(ViewClosed))
		tv.mu.Unlock()
		for _, st := range stores {
			if st != nil {
				if cerr := st.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("view %s: close store: %w", tv.topic, cerr)
				}
			}
		}
	}()
	byPartition := make(map[int32]store.Store, n)
	for p := range n {
		st, err := tv.cfg.storage(tv.name, p)
		if err != nil {
			return fmt.Errorf("view %s: open store of partition %d: %w", tv.topic, p, err)
		}
		stores[p] = st
		byPartition[p] = st
	}
	readyOf, err := r.add(ctx, byPartition)
	if err != nil {
		return fmt.Errorf("view %s: %w", tv.topic, err)
	}
	tv.partitions.Store(n)
	tv.reader.Store(r)
	defer tv.reader.Store(nil)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- r.run(runCtx) }()
	restored := make(chan struct{})
	go func() {
		for _, ready := range readyOf {
			if r.waitReady(runCtx, ready) != nil {
				return
			}
		}
		close(restored)
	}()
	for {
		select {
		case <-restored:
			// Here, not on the goroutine above, so that the stores are
			// never handed out after the deferred close took them back.
			tv.serve(stores)
			restored = nil
		case err = <-runDone:
			return err
		case <-ctx.Done():
			cancel()
			return <-runDone
		}
	}
}

// serve makes the restored stores answer Get, Has and Iterate, and the view
// running, in one step under mu: a partly restored store would answer
// ErrNotFound for a row it has not read yet, and a reader that sees a row
// must see the view running.
func (tv *tableView) serve(stores []store.Store) {
	tv.mu.Lock()
	tv.stores = stores
	tv.state.Store(int32(ViewRunning))
	tv.mu.Unlock()
	close(tv.ready)
}

// waitForTopic waits until the table topic exists and returns its
// partition count, or 0 once ctx is done.
func (tv *tableView) waitForTopic(ctx context.Context, r *tableReader) (int32, error) {
	var deadline <-chan time.Time
	if tv.cfg.topicWait > 0 {
		t := time.NewTimer(tv.cfg.topicWait)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(topicPollInterval)
	defer tick.Stop()
	logged := false
	for {
		counts, _, err := kafka.PartitionCounts(ctx, r.cl, tv.topic)
		if ctx.Err() != nil {
			return 0, nil
		}
		if err != nil {
			// The broker may be starting; the wait bounds how long that
			// may take.
			r.logger.Debug("looking for the table topic failed", "err", err)
		} else if n, ok := counts[tv.topic]; ok {
			return n, nil
		}
		if !logged {
			r.logger.Info("waiting for the table topic to be created by the group that owns it")
			logged = true
		}
		select {
		case <-ctx.Done():
			return 0, nil
		case <-deadline:
			if err != nil {
				return 0, fmt.Errorf("view %s: %w after waiting %v: looking for it failed: %w", tv.topic, ErrTopicNotFound, tv.cfg.topicWait, err)
			}
			return 0, fmt.Errorf("view %s: %w after waiting %v (a view never creates it; the group that owns the table does)", tv.topic, ErrTopicNotFound, tv.cfg.topicWait)
		case <-tick.C:
		}
	}
}

func (tv *tableView) waitReady(ctx context.Context) error {
	select {
	case <-tv.ready:
		return nil
	case <-tv.stopped:
		if e := tv.runErr.Load(); e != nil {
			return *e
		}
		return fmt.Errorf("view %s stopped before it was ready", tv.topic)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (tv *tableView) get(key string) ([]byte, error) {
	tv.mu.RLock()
	defer tv.mu.RUnlock()
	if tv.stores == nil {
		return nil, tv.notServing()
	}
	if reservedKey([]byte(key)) {
		// Timers and stream time: sluice's rows, not the table's.
		return nil, ErrNotFound
	}
	p := tv.cfg.client.hasher.Partition(key, int32(len(tv.stores)))
	raw, err := tv.stores[p].Get([]byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return raw, err
}

// restoreProgress sums the next offsets to read and the end offsets of the
// restore over the partitions, while Run copies the table.
func (tv *tableView) restoreProgress() (offset, end int64) {
	r := tv.reader.Load()
	if r == nil {
		return 0, 0
	}
	for p := range tv.partitions.Load() {
		if off, e, _, ok := r.progress(p); ok {
			offset += off
			end += e
		}
	}
	return offset, end
}

// rows returns the sum of the row counts of the partitions' stores, or -1
// when the view is not running or a store does not count its rows.
func (tv *tableView) rows() int64 {
	tv.mu.RLock()
	defer tv.mu.RUnlock()
	if tv.stores == nil {
		return -1
	}
	var sum int64
	for _, st := range tv.stores {
		c, ok := st.(store.RowCounter)
		if !ok {
			return -1
		}
		n, ok := c.Rows()
		if !ok {
			return -1
		}
		sum += n
	}
	return sum
}

// iterate merges the partitions' stores in key order.
func (tv *tableView) iterate(from, to string, fn func(k, v []byte) (bool, error)) error {
	tv.mu.RLock()
	defer tv.mu.RUnlock()
	if tv.stores == nil {
		return tv.notServing()
	}
	var lo, hi []byte
	if from != "" {
		lo = []byte(from)
	}
	if to != "" {
		hi = []byte(to)
	}
	its := make([]store.Iterator, 0, len(tv.stores))
	defer func() {
		for _, it := range its {
			_ = it.Close()
		}
	}()
	for _, st := range tv.stores {
		it, err := st.Iter(lo, hi)
		if err != nil {
			return fmt.Errorf("view %s: %w", tv.topic, err)
		}
		its = append(its, it)
	}
	return mergeIterators(its, func(k, v []byte) (bool, error) {
		if reservedKey(k) {
			return true, nil // timers and stream time: sluice's rows, not the table's
		}
		return fn(k, v)
	})
}
