package sluice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// ViewState is where a view is in its life.
type ViewState int32

const (
	// ViewIdle is a view that has not been run yet.
	ViewIdle ViewState = iota
	// ViewWaiting is a view whose Run has started and has not found its
	// table topic yet. A view never creates its topic: the group that owns
	// the table does, with the partition count of its inputs. It looks for
	// the topic when Run starts and then every half second; see TopicWait.
	ViewWaiting
	// ViewRestoring is a view copying its table up to the end offsets it
	// saw at start.
	ViewRestoring
	// ViewRunning is a restored view following new records.
	ViewRunning
	// ViewClosed is a view whose Run has returned.
	ViewClosed
)

func (s ViewState) String() string {
	switch s {
	case ViewIdle:
		return "idle"
	case ViewWaiting:
		return "waiting"
	case ViewRestoring:
		return "restoring"
	case ViewRunning:
		return "running"
	default:
		return "closed"
	}
}

type viewConfig struct {
	client    clientConfig
	storage   store.Builder
	topicWait time.Duration // 0: as long as Run's context allows
}

// ErrTopicNotFound is what a view's Run fails with, wrapped, when its table
// topic does not exist within the time TopicWait allows.
var ErrTopicNotFound = errors.New("table topic does not exist")

// topicPollInterval is how often a waiting view looks for its table topic.
const topicPollInterval = 500 * time.Millisecond

type viewOpt func(*viewConfig)

func (o viewOpt) applyView(c *viewConfig) { o(c) }

// TopicWait bounds how long a view's Run waits for its table topic to
// exist: once d has passed without it, Run fails with an error wrapping
// ErrTopicNotFound. While it waits, the view's State is ViewWaiting. Zero
// or less waits until Run's context is done. Default: 0.
func TopicWait(d time.Duration) ViewOpt {
	return viewOpt(func(c *viewConfig) { c.topicWait = d })
}

// View is a read-only, continuously updated local copy of a whole table,
// queryable by key and by key range. Get and Has look for a key's row in the
// partition the view's Hasher (Partitioning, default Murmur2) places the key
// on, the partition a processor with the same Hasher writes it to; a row that
// a producer put elsewhere is seen by Iterate only. Give the view the Hasher
// of the table's producers: CRC32 for librdkafka's default partitioner,
// FNV1a for Sarama's and goka's.
type View[V any] struct {
	topic   string
	codec   codec.Codec[V]
	tv      *tableView
	metrics *metricSet // nil without Metrics
}

// NewView returns a view of table whose rows are encoded with c. It does not
// connect until Run.
func NewView[V any](table string, c codec.Codec[V], opts ...ViewOpt) (*View[V], error) {
	if table == "" {
		return nil, errors.New("view: table name is empty")
	}
	if err := checkTopicName(table); err != nil {
		return nil, fmt.Errorf("view: table: %w", err)
	}
	if c == nil {
		return nil, fmt.Errorf("view %s: codec is nil", table)
	}
	cfg := viewConfig{client: defaultClientConfig(), storage: memory.Builder()}
	for _, o := range opts {
		if o != nil {
			o.applyView(&cfg)
		}
	}
	if err := cfg.client.check("view " + table); err != nil {
		return nil, err
	}
	if err := checkKafkaOptions("view "+table, cfg.client.kafkaOpts, readerOwned); err != nil {
		return nil, err
	}
	v := &View[V]{topic: table, codec: c, tv: newTableView(table, cfg)}
	if cfg.client.metrics != nil {
		var err error
		if v.metrics, err = metricSetOf(cfg.client.metrics); err != nil {
			return nil, fmt.Errorf("view %s: %w", table, err)
		}
	}
	return v, nil
}

// Run waits for the table topic to exist (a view never creates it; see
// TopicWait), copies the table and follows it until ctx is done; it returns
// nil then, or the error that stopped it.
func (v *View[V]) Run(ctx context.Context) error {
	defer v.attachMetrics()()
	return v.tv.run(ctx)
}

// WaitReady blocks until the view has restored its table, ctx is done or Run
// failed.
func (v *View[V]) WaitReady(ctx context.Context) error { return v.tv.waitReady(ctx) }

// State returns where the view is in its life.
func (v *View[V]) State() ViewState { return ViewState(v.tv.state.Load()) }

// Topic returns the table topic the view copies.
func (v *View[V]) Topic() string { return v.topic }

// Get returns the row of key, or ErrNotFound. Until the view is running
// (WaitReady returned nil) it returns an error saying so instead: a partly
// restored table would answer ErrNotFound for rows not read yet. Once Run
// has returned, it returns an error wrapping ErrClosed.
func (v *View[V]) Get(key string) (V, error) {
	var zero V
	raw, err := v.tv.get(key)
	if err != nil {
		return zero, err
	}
	val, err := v.codec.Decode(raw)
	if err != nil {
		return zero, fmt.Errorf("view %s key %q: decode: %w", v.topic, key, err)
	}
	return val, nil
}

// Has reports whether key has a row. Like Get, it fails until the view is
// running.
func (v *View[V]) Has(key string) (bool, error) {
	_, err := v.tv.get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Iterate calls fn for each row whose key lies in [from, to), in ascending
// key order, until fn returns false. An empty from starts at the first key;
// an empty to runs to the last. Like Get, it fails until the view is
// running.
func (v *View[V]) Iterate(from, to string, fn func(key string, value V) bool) error {
	return v.tv.iterate(from, to, func(k, raw []byte) (bool, error) {
		val, err := v.codec.Decode(raw)
		if err != nil {
			return false, fmt.Errorf("view %s key %q: decode: %w", v.topic, k, err)
		}
		return fn(string(k), val), nil
	})
}

// Handler returns an http.Handler that serves GET /{key} with the key's row
// as JSON, a JSON error with status 404 for a key without a row, and one
// with status 503 until the view is running and after its Run returned.
func (v *View[V]) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{key...}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if key == "" {
			writeJSONError(w, http.StatusBadRequest, "give a key: GET /{key}")
			return
		}
		val, err := v.Get(key)
		switch {
		case errors.Is(err, ErrNotFound):
			writeJSONError(w, http.StatusNotFound, fmt.Sprintf("key %q not found in %s", key, v.topic))
		case errors.Is(err, errViewNotReady), errors.Is(err, ErrClosed):
			writeJSONError(w, http.StatusServiceUnavailable, err.Error())
		case err != nil:
			writeJSONError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusOK, val)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "encode json: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

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
