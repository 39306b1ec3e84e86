package sluice

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// wvTable is a group's table topic on an embedded broker that a test
// writes rows to itself, as a windowed group would.
type wvTable struct {
	t     *testing.T
	b     *broker.Broker
	cl    *kgo.Client
	topic string
}

func newWVTable(t *testing.T, topic string, partitions int32) *wvTable {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, cl := brokerWithTopic(t, ctx, topic, partitions)
	return &wvTable{t: t, b: b, cl: cl, topic: topic}
}

// put writes a row to partition p; a nil value is a tombstone.
func (tb *wvTable) put(p int32, key string, value []byte) {
	tb.t.Helper()
	if err := tb.cl.ProduceSync(context.Background(), &kgo.Record{Topic: tb.topic, Partition: p, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		tb.t.Fatal(err)
	}
}

// startWindowView runs a window view of tb until the test ends and waits
// until it is restored.
func startWindowView[A any](tb *wvTable, aggregation string, c codec.Codec[A], dir string) (*WindowView[A], context.CancelFunc) {
	t := tb.t
	t.Helper()
	v, err := NewWindowView(tb.topic, aggregation, c, Brokers(tb.b.Addrs()...), Storage(pebble.Builder(dir, pebble.CountRows())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("window view %s: %v", aggregation, err)
		}
	}
	var once bool
	t.Cleanup(func() {
		if !once {
			stop()
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := v.WaitReady(wctx); err != nil {
		t.Fatalf("window view %s not ready: %v", aggregation, err)
	}
	return v, func() { once = true; stop() }
}

type wvWindow struct {
	start, end time.Time
	value      int64
}

func keyWindows(t *testing.T, v *WindowView[int64], key string, from, to time.Time) []wvWindow {
	t.Helper()
	var out []wvWindow
	if err := v.Windows(key, from, to, func(w Window, n int64) bool {
		out = append(out, wvWindow{w.Start, w.End, n})
		return true
	}); err != nil {
		t.Fatalf("windows of %q: %v", key, err)
	}
	return out
}

// awaitWindows polls the view until key's windows are want.
func awaitWindows(t *testing.T, v *WindowView[int64], key string, want []wvWindow) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := keyWindows(t, v, key, time.Time{}, time.Time{})
		if slices.EqualFunc(got, want, func(a, b wvWindow) bool {
			return a.start.Equal(b.start) && a.end.Equal(b.end) && a.value == b.value
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("windows of %q: %v, want %v", key, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getJSON fetches path from srv and decodes its JSON body into out.
func getJSON(t *testing.T, srv *httptest.Server, path string, out any) int {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: content type %q", path, ct)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %d %s: %v", path, resp.StatusCode, body, err)
	}
	return resp.StatusCode
}

type wvJSON struct {
	Key   string    `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value int64     `json:"value"`
}

func TestWindowViewServesAKeysWindowsInTimeOrderAndEveryKeyOfAWindow(t *testing.T) {
	const topic = "clicks-table"
	tb := newWVTable(t, topic, 2)
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	win := func(i int) Window {
		return Window{Start: base.Add(time.Duration(i) * 10 * time.Second), End: base.Add(time.Duration(i+1) * 10 * time.Second)}
	}
	n := func(v int64) []byte { return strconv.AppendInt(nil, v, 10) }
	counts := Count[string]().Codec

	// Key a's windows on partition 0, written out of time order; b and c
	// on partition 1.
	tb.put(0, windowRowKey("counts", "a", win(1)), n(3))
	tb.put(0, windowRowKey("counts", "a", win(0)), n(5))
	tb.put(0, windowRowKey("counts", "a", win(2)), n(1))
	tb.put(1, windowRowKey("counts", "b", win(0)), n(2))
	tb.put(1, windowRowKey("counts", "c", win(0)), n(7))
	// Rows the view must leave out: another aggregation's window, the
	// group's own table row, its stream time, and a reserved row that
	// begins like a window row and is not one.
	tb.put(0, windowRowKey("sums", "a", win(0)), n(999))
	tb.put(0, "a", []byte(`{"Count":9}`))
	tb.put(0, streamTimeKey, []byte("12345"))
	tb.put(1, windowSpace+"counts\x00short", n(8))

	dir := t.TempDir()
	v, stop := startWindowView(tb, "counts", counts, dir)
	want := []wvWindow{{win(0).Start, win(0).End, 5}, {win(1).Start, win(1).End, 3}, {win(2).Start, win(2).End, 1}}
	awaitWindows(t, v, "a", want)
	if got := keyWindows(t, v, "a", win(1).Start, win(2).Start); len(got) != 1 || got[0].value != 3 {
		t.Errorf("a's windows starting in [10s, 20s): %v, want the one of 3", got)
	}
	if got := keyWindows(t, v, "a", win(1).Start, time.Time{}); len(got) != 2 || got[0].value != 3 || got[1].value != 1 {
		t.Errorf("a's windows from 10s on: %v, want 3 and 1", got)
	}
	if got := keyWindows(t, v, "a", win(2).Start, win(1).Start); len(got) != 0 {
		t.Errorf("a's windows of a reversed range: %v", got)
	}
	var keys []string
	if err := v.Keys(win(0), func(key string, n int64) bool {
		keys = append(keys, fmt.Sprintf("%s=%d", key, n))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=5", "b=2", "c=7"}; !slices.Equal(keys, want) {
		t.Errorf("keys of the first window: %v, want %v", keys, want)
	}
	if s := v.Stats(); s.Rows != 5 || s.State != ViewRunning {
		t.Errorf("stats: %+v, want 5 windows and running", s)
	}

	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	var got []wvJSON
	if code := getJSON(t, srv, "/a", &got); code != http.StatusOK || len(got) != 3 {
		t.Fatalf("GET /a: %d %+v", code, got)
	}
	if first := got[0]; first.Key != "a" || !first.Start.Equal(win(0).Start) || !first.End.Equal(win(0).End) || first.Value != 5 {
		t.Errorf("GET /a: first window %+v", first)
	}
	// from in RFC 3339 with a zone offset, to in epoch milliseconds.
	q := url.Values{"from": {win(1).Start.In(time.FixedZone("", 3600)).Format(time.RFC3339)}, "to": {strconv.FormatInt(win(2).Start.UnixMilli(), 10)}}
	if code := getJSON(t, srv, "/a?"+q.Encode(), &got); code != http.StatusOK || len(got) != 1 || got[0].Value != 3 {
		t.Errorf("GET /a?%s: %d %+v", q.Encode(), code, got)
	}
	// An offset's "+" that the client did not escape arrives as a space.
	if code := getJSON(t, srv, "/a?from=2026-12-01T11:00:20+01:00", &got); code != http.StatusOK || len(got) != 1 || got[0].Value != 1 {
		t.Errorf("GET /a from an unescaped offset time: %d %+v", code, got)
	}
	if code := getJSON(t, srv, "/?start="+win(0).Start.Format(time.RFC3339)+"&end="+win(0).End.Format(time.RFC3339), &got); code != http.StatusOK || len(got) != 3 || got[2].Key != "c" || got[2].Value != 7 {
		t.Errorf("GET the keys of the first window: %d %+v", code, got)
	}

	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/a?from=yesterday", http.StatusBadRequest, `from: "yesterday" is neither an RFC 3339 time nor epoch milliseconds`},
		{"/a?to=12.5", http.StatusBadRequest, `to: "12.5" is neither`},
		{"/a?from=" + strconv.FormatInt(win(2).Start.UnixMilli(), 10) + "&to=" + strconv.FormatInt(win(0).Start.UnixMilli(), 10), http.StatusBadRequest, "is after to"},
		{"/nobody", http.StatusNotFound, `key "nobody" has no windows of counts in clicks-table`},
		{"/a?from=" + strconv.FormatInt(base.Add(time.Hour).UnixMilli(), 10), http.StatusNotFound, `key "a" has no windows of counts`},
		{"/", http.StatusBadRequest, "give a key"},
		{"/?start=" + strconv.FormatInt(base.UnixMilli(), 10), http.StatusBadRequest, "end is missing"},
		{"/?start=0&end=10000", http.StatusNotFound, "no key has the window"},
		{"/?start=10000&end=0", http.StatusBadRequest, "end 1970-01-01T00:00:00Z is before start 1970-01-01T00:00:10Z"},
		{"/?start=10000&end=10000", http.StatusNotFound, "no key has the window"},
	} {
		var e struct{ Error string }
		if code := getJSON(t, srv, tc.path, &e); code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("GET %s: %d %q, want %d and %q", tc.path, code, e.Error, tc.code, tc.msg)
		}
	}

	// The view follows the table: a purged window's tombstone removes it,
	// an update replaces it.
	tb.put(0, windowRowKey("counts", "a", win(2)), nil)
	tb.put(0, windowRowKey("counts", "a", win(0)), n(6))
	tb.put(0, windowRowKey("sums", "a", win(1)), n(1000))
	awaitWindows(t, v, "a", []wvWindow{{win(0).Start, win(0).End, 6}, {win(1).Start, win(1).End, 3}})
	if s := v.Stats(); s.Rows != 4 {
		t.Errorf("stats after a purge: %d windows, want 4", s.Rows)
	}

	// A view started again on the same store resumes with what it had,
	// and what was written meanwhile.
	stop()
	tb.put(1, windowRowKey("counts", "b", win(1)), n(4))
	v, _ = startWindowView(tb, "counts", counts, dir)
	awaitWindows(t, v, "b", []wvWindow{{win(0).Start, win(0).End, 2}, {win(1).Start, win(1).End, 4}})
	awaitWindows(t, v, "a", []wvWindow{{win(0).Start, win(0).End, 6}, {win(1).Start, win(1).End, 3}})
}

// Two aggregations of one table have views of their own, side by side in
// one store directory, each with its own codec; a sketch is served as its
// summary.
func TestWindowViewsOfTwoAggregationsKeepApartAndServeSketchesAsSummaries(t *testing.T) {
	tb := newWVTable(t, "drain-table", 1)
	w := Window{Start: time.UnixMilli(60_000), End: time.UnixMilli(120_000)}
	lat, err := Quantiles(0.01, func(ms float64) float64 { return ms })
	if err != nil {
		t.Fatal(err)
	}
	s := lat.Init()
	for _, ms := range []float64{10, 20, 30, 40, 1000} {
		s = lat.Add(s, ms, Point{})
	}
	raw, err := lat.Codec.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	tb.put(0, windowRowKey("latency", "route-1", w), raw)
	tb.put(0, windowRowKey("requests", "route-1", w), []byte("5"))

	dir := t.TempDir()
	sketches, _ := startWindowView(tb, "latency", lat.Codec, dir)
	counts, _ := startWindowView(tb, "requests", Count[float64]().Codec, dir)
	awaitWindows(t, counts, "route-1", []wvWindow{{w.Start, w.End, 5}})

	srv := httptest.NewServer(sketches.Handler())
	defer srv.Close()
	var got []struct {
		Key   string
		Value struct {
			Count int64
			P50   float64
			Max   float64
		}
	}
	if code := getJSON(t, srv, "/route-1?from=0", &got); code != http.StatusOK || len(got) != 1 {
		t.Fatalf("GET /route-1: %d %+v", code, got)
	}
	if v := got[0].Value; v.Count != 5 || v.P50 < 29.7 || v.P50 > 30.3 || v.Max < 990 || v.Max > 1010 {
		t.Errorf("sketch summary %+v, want count 5, p50 about 30, max about 1000", v)
	}
}

func TestNewWindowViewRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		table, aggregation string
		c                  codec.Codec[int64]
		want               string
	}{
		{"", "counts", codec.Int64(), "table name is empty"},
		{"t", "", codec.Int64(), "aggregation name"},
		{"t", "a\x00b", codec.Int64(), "hold no zero byte"},
		{"t", "counts", nil, "codec is nil"},
	} {
		if _, err := NewWindowView(tc.table, tc.aggregation, tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWindowView(%q, %q): %v, want %q", tc.table, tc.aggregation, err, tc.want)
		}
	}
}

// A session of one record starts and ends at its time: the handler serves
// the keys of such a window rather than refuse its end as not after its
// start, and refuses only an end before the start.
func TestWindowViewHandlerServesTheKeysOfASessionOfOneRecord(t *testing.T) {
	tb := newWVTable(t, "visits-windows", 1)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tb.put(0, windowRowKey("visits", "bob", Window{Start: at, End: at}), []byte("1"))
	tb.put(0, windowRowKey("visits", "alice", Window{Start: at.Add(-time.Minute), End: at}), []byte("4"))
	v, _ := startWindowView(tb, "visits", Count[string]().Codec, t.TempDir())
	awaitWindows(t, v, "bob", []wvWindow{{at, at, 1}})
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	var got []wvJSON
	if code := getJSON(t, srv, "/?start="+ms+"&end="+ms, &got); code != http.StatusOK || len(got) != 1 || got[0].Key != "bob" || got[0].Value != 1 {
		t.Errorf("GET the keys of the session [%s, %s]: %d %+v", at, at, code, got)
	}
	var e struct{ Error string }
	before := strconv.FormatInt(at.Add(-time.Second).UnixMilli(), 10)
	if code := getJSON(t, srv, "/?start="+ms+"&end="+before, &e); code != http.StatusBadRequest || !strings.Contains(e.Error, "is before start") {
		t.Errorf("GET a window that ends before it starts: %d %q", code, e.Error)
	}
}

// An aggregate that is NaN or infinite, which JSON has no number for, is
// served as the string "NaN", "+Inf" or "-Inf", inside a Min or Max
// aggregate too, instead of the whole answer failing.
func TestWindowViewHandlerServesNonFiniteAggregatesAsStrings(t *testing.T) {
	tb := newWVTable(t, "sensors-windows", 1)
	w := Window{Start: time.UnixMilli(60_000), End: time.UnixMilli(120_000)}
	tb.put(0, windowRowKey("sums", "a", w), []byte("NaN"))
	tb.put(0, windowRowKey("sums", "b", w), []byte("+Inf"))
	tb.put(0, windowRowKey("sums", "c", w), []byte("-Inf"))
	tb.put(0, windowRowKey("sums", "d", w), []byte("1.5"))
	tb.put(0, windowRowKey("peaks", "a", w), []byte("+Inf"))
	sums, _ := startWindowView(tb, "sums", Sum[string, float64](func(string) float64 { return 0 }).Codec, t.TempDir())
	peaks, _ := startWindowView(tb, "peaks", Max[string, float64](func(string) float64 { return 0 }).Codec, t.TempDir())

	srv := httptest.NewServer(sums.Handler())
	defer srv.Close()
	var got []struct {
		Key   string
		Value any
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := getJSON(t, srv, "/?start=60000&end=120000", &got)
		if code == http.StatusOK && len(got) == 4 {
			break
		}
		if code != http.StatusOK && code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("GET the keys of the window: %d %+v", code, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := []any{"NaN", "+Inf", "-Inf", 1.5}
	for i, g := range got {
		if g.Value != want[i] {
			t.Errorf("window of %s: value %#v, want %#v", g.Key, g.Value, want[i])
		}
	}

	psrv := httptest.NewServer(peaks.Handler())
	defer psrv.Close()
	var peak []struct{ Value any }
	for {
		code := getJSON(t, psrv, "/a", &peak)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("GET /a of the peaks: %d %+v", code, peak)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(peak) != 1 || peak[0].Value != "+Inf" {
		t.Errorf("peaks of a: %+v, want one of \"+Inf\"", peak)
	}
}

// A key that looks like a path is served its own windows, given as it is,
// not redirected to another key's; a method other than GET or HEAD gets a
// JSON 405.
func TestWindowViewHandlerServesKeysThatLookLikePaths(t *testing.T) {
	tb := newWVTable(t, "routes-windows", 1)
	w := Window{Start: time.UnixMilli(60_000), End: time.UnixMilli(120_000)}
	tb.put(0, windowRowKey("hits", "/api/users", w), []byte("3"))
	tb.put(0, windowRowKey("hits", "api/users", w), []byte("5"))
	v, _ := startWindowView(tb, "hits", Count[string]().Codec, t.TempDir())
	awaitWindows(t, v, "/api/users", []wvWindow{{w.Start, w.End, 3}})
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	var got []wvJSON
	if code := getJSON(t, srv, "//api/users", &got); code != http.StatusOK || len(got) != 1 || got[0].Key != "/api/users" || got[0].Value != 3 {
		t.Errorf("GET //api/users: %d %+v, want the window of 3 of /api/users", code, got)
	}
	resp, err := http.Post(srv.URL+"/api/users", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("POST: %d %s, want a JSON 405", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
