package sluice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

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
	case ViewRestoring:
		return "restoring"
	case ViewRunning:
		return "running"
	default:
		return "closed"
	}
}

type viewConfig struct {
	client  clientConfig
	storage store.Builder
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
	counter viewCounter
}

// NewView returns a view of table whose rows are encoded with c. It does not
// connect until Run.
func NewView[V any](table string, c codec.Codec[V], opts ...ViewOpt) (*View[V], error) {
	if table == "" {
		return nil, errors.New("view: table name is empty")
	}
	if c == nil {
		return nil, fmt.Errorf("view %s: codec is nil", table)
	}
	cfg := viewConfig{client: defaultClientConfig(), storage: memory.Builder()}
	for _, o := range opts {
		o.applyView(&cfg)
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

// Run copies the table and follows it until ctx is done; it returns nil then,
// or the error that stopped it.
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

// Get returns the row of key, or ErrNotFound.
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

// Has reports whether key has a row.
func (v *View[V]) Has(key string) (bool, error) {
	_, err := v.tv.get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Iterate calls fn for each row whose key lies in [from, to), in ascending
// key order, until fn returns false. An empty from starts at the first key;
// an empty to runs to the last.
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
// as JSON, and a JSON error with status 404 for a key without a row.
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
		case errors.Is(err, errViewNotReady):
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
}

func newTableView(topic string, cfg viewConfig) *tableView {
	return &tableView{topic: topic, cfg: cfg, name: topic + ".view", ready: make(chan struct{}), stopped: make(chan struct{})}
}

func (tv *tableView) run(ctx context.Context) (err error) {
	if !tv.state.CompareAndSwap(int32(ViewIdle), int32(ViewRestoring)) {
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
	counts, err := kafka.EnsureTopics(ctx, r.cl, kafka.TopicSpec{
		Name: tv.topic, Partitions: tv.cfg.client.partitions, Replication: tv.cfg.client.replication, Compacted: true,
	})
	if err != nil {
		return fmt.Errorf("view %s: %w", tv.topic, err)
	}
	n := counts[tv.topic]
	stores := make([]store.Store, n)
	defer func() {
		tv.mu.Lock()
		tv.stores = nil
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
	tv.mu.Lock()
	tv.stores = stores
	tv.mu.Unlock()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- r.run(runCtx) }()
	go func() {
		for _, ready := range readyOf {
			if r.waitReady(runCtx, ready) != nil {
				return
			}
		}
		tv.state.Store(int32(ViewRunning))
		close(tv.ready)
	}()
	select {
	case err = <-runDone:
		return err
	case <-ctx.Done():
		cancel()
		return <-runDone
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
		return nil, fmt.Errorf("view %s: %w", tv.topic, errViewNotReady)
	}
	p := tv.cfg.client.hasher.Partition(key, int32(len(tv.stores)))
	raw, err := tv.stores[p].Get([]byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return raw, err
}

// iterate merges the partitions' stores in key order.
func (tv *tableView) iterate(from, to string, fn func(k, v []byte) (bool, error)) error {
	tv.mu.RLock()
	defer tv.mu.RUnlock()
	if tv.stores == nil {
		return fmt.Errorf("view %s: %w", tv.topic, errViewNotReady)
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
	return mergeIterators(its, fn)
}
