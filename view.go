package sluice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/jsonvalue"
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
// The row is written as encoding/json writes it, except that a float that
// is NaN or infinite, which JSON has no number for, is written as the
// string "NaN", "+Inf" or "-Inf".
//
// The key is the request's path after its leading "/", unescaped ("%2F"
// is a "/"), and taken as it is, never cleaned: GET //api/users asks for
// the key "/api/users", GET /a/../b for "a/../b". Methods other than GET
// and HEAD get a JSON error with status 405.
func (v *View[V]) Handler() http.Handler {
	return keyHandler(func(w http.ResponseWriter, _ *http.Request, key string) {
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
}

// keyHandler answers GET and HEAD requests with serve, given the key the
// path names: the path after its leading "/", unescaped. It does not clean
// the path as http.ServeMux does, which would redirect /a//b or /a/../b to
// another key's row. Other methods get a JSON 405.
func keyHandler(serve func(w http.ResponseWriter, r *http.Request, key string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: a view only reads, with GET", r.Method))
			return
		}
		serve(w, r, strings.TrimPrefix(r.URL.Path, "/"))
	})
}

// writeJSON answers v as JSON, with NaN and infinite floats as strings
// (see jsonvalue).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := jsonvalue.Marshal(v)
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
