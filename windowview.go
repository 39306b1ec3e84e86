package sluice

// A WindowView copies the window rows of one windowed aggregation out of a
// group's windows topic (or, for windows kept in a table, its table topic),
// with the same reader and restore as a View, into local stores laid out
// for its two queries.
//
// Invariants:
//   - A windowStore turns each window row of the changelog into two rows of
//     its store, written in the same Apply: one under the key and the
//     window's start (the key's windows, in time order), one under the
//     window's end and start and the key (a window's keys). A tombstone
//     deletes both. Every other row of the topic (the group's table rows,
//     timers, stream time, other aggregations' windows) is dropped, so the
//     store holds exactly the aggregation's windows, and the checkpoint of
//     each Apply still covers every record it was handed.
//   - The aggregation's purge mark (windowlog.go) deletes the windows
//     below it, both rows each, in the Apply that reads it: a windows
//     topic has no tombstone for a purged window. Its rows come before
//     the mark in the topic, compacted or not, so none is read after it.
//   - Queries read every partition's store, so they find a window whichever
//     partition its row was written to.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// WindowView is a read-only, continuously updated local copy of the
// windows of one windowed aggregation of a group, read from the group's
// windows topic: a key's windows in a time range, and every key of one
// window. It sees a window from its first result until the group purges
// it, closed windows included.
type WindowView[A any] struct {
	topic       string
	aggregation string
	codec       codec.Codec[A]
	tv          *tableView
}

// NewWindowView returns a view of the windows of the aggregation named
// aggregation in table, the group's windows topic (Group.WindowsTopic,
// "<group>-windows"; a topic written as a table, with a tombstone per
// purged window, works too), whose
// aggregates are encoded with c, the codec of the aggregation's
// Aggregator. It takes the options of a View; it keeps its own stores,
// apart from a View of the same table, and reports no metrics (see Stats).
// It does not connect until Run.
func NewWindowView[A any](table, aggregation string, c codec.Codec[A], opts ...ViewOpt) (*WindowView[A], error) {
	switch {
	case table == "":
		return nil, errors.New("window view: table name is empty")
	case checkTopicName(table) != nil:
		return nil, fmt.Errorf("window view: table: %w", checkTopicName(table))
	case aggregation == "" || strings.ContainsRune(aggregation, 0):
		return nil, fmt.Errorf("window view of %s: aggregation name %q must be non-empty and hold no zero byte", table, aggregation)
	case c == nil:
		return nil, fmt.Errorf("window view %s/%s: codec is nil", table, aggregation)
	}
	cfg := viewConfig{client: defaultClientConfig(), storage: memory.Builder()}
	for _, o := range opts {
		if o != nil {
			o.applyView(&cfg)
		}
	}
	if err := cfg.client.check("window view " + table + "/" + aggregation); err != nil {
		return nil, err
	}
	if err := checkKafkaOptions("window view "+table+"/"+aggregation, cfg.client.kafkaOpts, readerOwned); err != nil {
		return nil, err
	}
	build := cfg.storage
	cfg.storage = func(name string, p int32) (store.Store, error) {
		st, err := build(name, p)
		if err != nil {
			return nil, err
		}
		return &windowStore{Store: st, aggregation: aggregation}, nil
	}
	tv := newTableView(table, cfg)
	// Its own store name, a single path element, so that it never opens
	// the store of a View or another aggregation's view of the table.
	tv.name = table + ".windows." + storeNameEscaper.Replace(aggregation)
	return &WindowView[A]{topic: table, aggregation: aggregation, codec: c, tv: tv}, nil
}

var storeNameEscaper = strings.NewReplacer("%", "%25", "/", "%2F", `\`, "%5C")

// Run waits for the table topic to exist (a view never creates it; see
// TopicWait), copies the aggregation's windows and follows the table until
// ctx is done; it returns nil then, or the error that stopped it.
func (v *WindowView[A]) Run(ctx context.Context) error { return v.tv.run(ctx) }

// WaitReady blocks until the view has restored its windows, ctx is done or
// Run failed.
func (v *WindowView[A]) WaitReady(ctx context.Context) error { return v.tv.waitReady(ctx) }

// State returns where the view is in its life.
func (v *WindowView[A]) State() ViewState { return ViewState(v.tv.state.Load()) }

// Topic returns the table topic the view reads.
func (v *WindowView[A]) Topic() string { return v.topic }

// Aggregation returns the name of the windowed aggregation the view keeps.
func (v *WindowView[A]) Aggregation() string { return v.aggregation }

// Stats returns the view's state, with Rows the number of windows it
// holds (a window of a key is one).
func (v *WindowView[A]) Stats() ViewStats {
	s := ViewStats{Topic: v.topic, State: v.State(), Rows: -1}
	s.RestoreOffset, s.RestoreEnd = v.tv.restoreProgress()
	if s.State == ViewRunning {
		s.Rows = v.tv.rows()
	}
	return s
}

// Windows calls fn with each window of key whose start lies in [from, to)
// and its aggregate, in order of start (then end), until fn returns false.
// A zero from or to leaves that side of the range open. Like a View's Get,
// it fails until the view is running.
func (v *WindowView[A]) Windows(key string, from, to time.Time, fn func(w Window, agg A) bool) error {
	prefix := byKeyPrefix(key)
	lo := append(bytes.Clone(prefix), sortableTime(boundNanos(from, math.MinInt64))...)
	hi := prefixEnd(prefix)
	if !to.IsZero() {
		hi = append(bytes.Clone(prefix), sortableTime(boundNanos(to, math.MaxInt64))...)
	}
	if bytes.Compare(lo, hi) >= 0 {
		return nil // from is not before to: an empty range
	}
	return v.tv.iterate(string(lo), string(hi), func(k, raw []byte) (bool, error) {
		rest := k[len(prefix):]
		w := Window{Start: timeOf(rest[:8]), End: timeOf(rest[8:16])}
		agg, err := v.codec.Decode(raw)
		if err != nil {
			return false, fmt.Errorf("window view %s/%s key %q window %s: decode: %w", v.topic, v.aggregation, key, windowText(w), err)
		}
		return fn(w, agg), nil
	})
}

// Keys calls fn with each key that has the window w (the same start and
// end) and its aggregate, in key order, until fn returns false. Like
// Windows, it fails until the view is running.
func (v *WindowView[A]) Keys(w Window, fn func(key string, agg A) bool) error {
	prefix := byWindowPrefix(w)
	return v.tv.iterate(string(prefix), string(prefixEnd(prefix)), func(k, raw []byte) (bool, error) {
		key := string(k[len(prefix):])
		agg, err := v.codec.Decode(raw)
		if err != nil {
			return false, fmt.Errorf("window view %s/%s key %q window %s: decode: %w", v.topic, v.aggregation, key, windowText(w), err)
		}
		return fn(key, agg), nil
	})
}

// Handler returns an http.Handler that serves the view's windows as JSON
// arrays of {"key", "start", "end", "value"}, the times in RFC 3339 and the
// value as encoding/json writes the aggregate, except that a float that is
// NaN or infinite (a Sum of floats that met one, a Max of +Inf), which
// JSON has no number for, is written as the string "NaN", "+Inf" or
// "-Inf":
//
//   - GET /{key}?from=…&to=… serves the key's windows whose start lies in
//     [from, to), in time order; a missing from or to leaves that side
//     open;
//   - GET /?start=…&end=… serves every key of the window that starts at
//     start and ends at end (the same time for a session of one record),
//     in key order.
//
// Times are RFC 3339 or integer milliseconds since the Unix epoch. A time
// that is neither, a from after to, an end before its start or a missing
// start or end is a 400; no
// window in the answer is a 404, and a view not running yet a 503; all
// carry {"error": …}, as a View's Handler does. The key is read from the
// path as a View's Handler reads it, never cleaned, and methods other than
// GET and HEAD get a 405.
func (v *WindowView[A]) Handler() http.Handler {
	return keyHandler(func(w http.ResponseWriter, r *http.Request, key string) {
		if key != "" {
			v.serveKey(w, r, key)
		} else {
			v.serveWindow(w, r)
		}
	})
}

// windowJSON is one window in a Handler's answer.
type windowJSON[A any] struct {
	Key   string    `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value A         `json:"value"`
}

func (v *WindowView[A]) serveKey(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	from, err := parseQueryTime(q, "from")
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	to, err := parseQueryTime(q, "to")
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !from.IsZero() && !to.IsZero() && from.After(to) {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("from %s is after to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)))
		return
	}
	out := []windowJSON[A]{}
	err = v.Windows(key, from, to, func(win Window, agg A) bool {
		out = append(out, windowJSON[A]{Key: key, Start: win.Start, End: win.End, Value: agg})
		return true
	})
	v.answer(w, out, err, fmt.Sprintf("key %q has no windows of %s in %s%s", key, v.aggregation, v.topic, rangeText(from, to)))
}

func (v *WindowView[A]) serveWindow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, err := parseQueryTime(q, "start")
	if err == nil && start.IsZero() {
		err = errors.New("give a key, GET /{key}, or a window, GET /?start=…&end=…: start is missing")
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	end, err := parseQueryTime(q, "end")
	if err == nil && end.IsZero() {
		err = errors.New("a window needs its end: end is missing")
	}
	if err == nil && end.Before(start) {
		// A session of one record ends at its start.
		err = fmt.Errorf("a window does not end before it starts: end %s is before start %s", end.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	win := Window{Start: start, End: end}
	out := []windowJSON[A]{}
	err = v.Keys(win, func(key string, agg A) bool {
		out = append(out, windowJSON[A]{Key: key, Start: win.Start, End: win.End, Value: agg})
		return true
	})
	v.answer(w, out, err, fmt.Sprintf("no key has the window %s of %s in %s", windowText(win), v.aggregation, v.topic))
}

// answer writes out, or the error of the query that gathered it, or a 404
// with notFound when it is empty.
func (v *WindowView[A]) answer(w http.ResponseWriter, out []windowJSON[A], err error, notFound string) {
	switch {
	case errors.Is(err, errViewNotReady), errors.Is(err, ErrClosed):
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
	case len(out) == 0:
		writeJSONError(w, http.StatusNotFound, notFound)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// parseQueryTime reads the time of query parameter name: RFC 3339 or
// integer epoch milliseconds, or the zero time when it is missing.
func parseQueryTime(q map[string][]string, name string) (time.Time, error) {
	vals := q[name]
	if len(vals) == 0 || vals[0] == "" {
		return time.Time{}, nil
	}
	s := vals[0]
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil && strings.Contains(s, " ") {
		// An unescaped "+" of a zone offset arrives as a space.
		t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(s, " ", "+"))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is neither an RFC 3339 time nor epoch milliseconds", name, s)
	}
	return t.UTC(), nil
}

func rangeText(from, to time.Time) string {
	f, t := "", ""
	if !from.IsZero() {
		f = from.Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		t = to.Format(time.RFC3339Nano)
	}
	if f == "" && t == "" {
		return ""
	}
	return fmt.Sprintf(" starting in [%s, %s)", f, t)
}

// windowText describes w in RFC 3339, UTC.
func windowText(w Window) string {
	return fmt.Sprintf("from %s to %s", w.Start.UTC().Format(time.RFC3339Nano), w.End.UTC().Format(time.RFC3339Nano))
}

// The two row spaces of a windowStore.
const (
	byKeySpace    = 'k' // uvarint key length, key, start, end
	byWindowSpace = 'w' // end, start, key
)

func byKeyPrefix(key string) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+16)
	b = append(b, byKeySpace)
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

func byKeyRow(key string, w Window) []byte {
	b := append(byKeyPrefix(key), sortableTime(w.Start.UnixNano())...)
	return append(b, sortableTime(w.End.UnixNano())...)
}

func byWindowPrefix(w Window) []byte {
	b := make([]byte, 0, 1+16)
	b = append(b, byWindowSpace)
	b = append(b, sortableTime(boundNanos(w.End, math.MaxInt64))...)
	return append(b, sortableTime(boundNanos(w.Start, math.MinInt64))...)
}

func byWindowRow(key string, w Window) []byte {
	return append(byWindowPrefix(w), key...)
}

// prefixEnd returns the least key after every key that begins with p. p
// must hold a byte below 0xff, as the row spaces' first bytes are.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for len(end) > 0 && end[len(end)-1] == 0xff {
		end = end[:len(end)-1]
	}
	end[len(end)-1]++
	return end
}

// The times whose Unix nanoseconds an int64 holds.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

// boundNanos returns t in Unix nanoseconds, clamped to what an int64
// holds, or open when t is zero.
func boundNanos(t time.Time, open int64) int64 {
	switch {
	case t.IsZero():
		return open
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// timeOf reads a sortableTime, in UTC.
func timeOf(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// windowStore is the store of one partition of a WindowView: it keeps the
// window rows of one aggregation in its two row spaces and drops every
// other row it is handed.
type windowStore struct {
	store.Store
	aggregation string
}

func (s *windowStore) Apply(changes []store.Change, offset int64) error {
	rows := make([]store.Change, 0, 2*len(changes))
	for _, c := range changes {
		if name, ok := strings.CutPrefix(string(c.Key), windowPurgeSpace); ok {
			if name == s.aggregation && c.Value != nil {
				purged, err := s.purged(string(c.Value))
				if err != nil {
					return err
				}
				rows = append(rows, purged...)
			}
			continue
		}
		name, key, w, ok := parseWindowRowKey(string(c.Key))
		if !ok || name != s.aggregation {
			continue
		}
		rows = append(rows,
			store.Change{Key: byKeyRow(key, w), Value: c.Value},
			store.Change{Key: byWindowRow(key, w), Value: c.Value})
	}
	return s.Store.Apply(rows, offset)
}

// purged returns the deletes of the windows the store holds below the
// purge mark mark: a window row key, or the start of one, whose end,
// start and key sort as the rows of byWindowSpace do.
func (s *windowStore) purged(mark string) ([]store.Change, error) {
	lo, _ := aggRange(s.aggregation)
	rest, ok := strings.CutPrefix(mark, string(lo))
	if !ok {
		return nil, nil // another aggregation's, or not a mark
	}
	it, err := s.Store.Iter([]byte{byWindowSpace}, append([]byte{byWindowSpace}, rest...))
	if err != nil {
		return nil, fmt.Errorf("purge windows below %q: %w", rest, err)
	}
	var dels []store.Change
	for it.Next() {
		k := it.Key()
		if len(k) < 17 {
			continue
		}
		w := Window{Start: timeOf(k[9:17]), End: timeOf(k[1:9])}
		dels = append(dels, store.Change{Key: byKeyRow(string(k[17:]), w)}, store.Change{Key: bytes.Clone(k)})
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, fmt.Errorf("purge windows below %q: %w", rest, err)
	}
	return dels, nil
}

// Flush passes a flush on to a store that can.
func (s *windowStore) Flush() error {
	if f, ok := s.Store.(store.Flusher); ok {
		return f.Flush()
	}
	return nil
}

// Rows counts windows: two rows of the store each.
func (s *windowStore) Rows() (int64, bool) {
	c, ok := s.Store.(store.RowCounter)
	if !ok {
		return 0, false
	}
	n, ok := c.Rows()
	return n / 2, ok
}
