package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// smallLimits are small enough that a few hundred events need many records
// and calls, and that each limit is the one that ends some record or call.
var smallLimits = Limits{MaxRecordsPerCall: 4, MaxEventsPerRecord: 7, MaxRecordBytes: 300, MaxCallBytes: 900}

func testLine(i, pad int) []byte {
	return []byte(fmt.Sprintf(`{"id":"e%d","pad":"%s"}`+"\n", i, strings.Repeat("x", pad)))
}

func TestPackKeepsEveryCallAndRecordWithinLimits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var lines [][]byte
	for i := range 2000 {
		lines = append(lines, testLine(i, r.IntN(250)))
	}
	l := smallLimits.withDefaults()
	var got [][]byte
	for rest := lines; len(rest) > 0; {
		records, used := l.pack(rest)
		if used == 0 {
			t.Fatal("pack took no line")
		}
		if err := l.Check(records); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rec := range records {
			if rec.Events == 0 || bytes.Count(rec.Data, []byte("\n")) != rec.Events {
				t.Fatalf("record of %d events holds %d lines", rec.Events, bytes.Count(rec.Data, []byte("\n")))
			}
			got = append(got, bytes.SplitAfter(rec.Data, []byte("\n"))[:rec.Events]...)
			n += rec.Events
		}
		if n != used {
			t.Fatalf("records hold %d lines, pack says %d", n, used)
		}
		rest = rest[used:]
	}
	if !slices.EqualFunc(got, lines, bytes.Equal) {
		t.Fatal("the records do not hold the lines in order")
	}
}

func TestPackFillsEachRecordAndCallToALimit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var lines [][]byte
	for i := range 2000 {
		lines = append(lines, testLine(i, r.IntN(250)))
	}
	l := smallLimits.withDefaults()
	for rest := lines; len(rest) > 0; {
		records, used := l.pack(rest)
		total, i := 0, 0
		for _, rec := range records {
			i += rec.Events
			total += len(rec.Data)
			if i == len(rest) {
				break
			}
			// The next line would break a limit of the record, or
			// the call's bytes.
			next := len(rest[i])
			if rec.Events < l.MaxEventsPerRecord && len(rec.Data)+next <= l.MaxRecordBytes && total+next <= l.MaxCallBytes {
				t.Fatalf("a record of %d events and %d bytes ends before a line of %d bytes that fits", rec.Events, len(rec.Data), next)
			}
		}
		if used < len(rest) && len(records) < l.MaxRecordsPerCall && total+len(rest[used]) <= l.MaxCallBytes {
			t.Fatalf("a call of %d records and %d bytes ends before a line of %d bytes that fits", len(records), total, len(rest[used]))
		}
		rest = rest[used:]
	}
}

func TestLimitsCheckNamesTheLimitBroken(t *testing.T) {
	l := Limits{MaxRecordsPerCall: 2, MaxEventsPerRecord: 2, MaxRecordBytes: 10, MaxCallBytes: 15}
	rec := func(events, size int) Record { return Record{Data: make([]byte, size), Events: events} }
	for _, tt := range []struct {
		records []Record
		want    string
	}{
		{[]Record{rec(1, 1), rec(1, 1), rec(1, 1)}, "call of 3 records"},
		{[]Record{rec(3, 3)}, "record 0: 3 events"},
		{[]Record{rec(1, 11)}, "record 0: 11 bytes"},
		{[]Record{rec(1, 8), rec(1, 8)}, "call of 16 bytes"},
	} {
		if err := l.Check(tt.records); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check = %v, want %q", err, tt.want)
		}
	}
	if err := l.Check([]Record{rec(2, 7), rec(2, 8)}); err != nil {
		t.Errorf("Check at the limits = %v", err)
	}
}

func TestBackoffGrowsExponentiallyWithJitterUpToTheCap(t *testing.T) {
	x, err := NewExporter(SinkFunc(func(context.Context, []Record) ([]error, error) { return nil, nil }),
		ExporterConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for failures, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: 1600 * time.Millisecond, 6: 2 * time.Second, 40: 2 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := x.backoff(failures)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %s, want between %s and %s", failures, d, full/2, full)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter: %v", failures, seen)
		}
	}
}

// flakySink is a loopback HTTP server in front of an HTTPSink that fails
// some calls (503) and rejects some lines at random, checks every call and
// record against its limits, and keeps the ids of the events it took.
type flakySink struct {
	t         *testing.T
	limits    Limits
	failCalls float64 // share of calls answered 503
	rejLines  float64 // share of lines rejected
	// onLine, if set, sees every line of every call, taken or not.
	onLine func(line []byte)

	mu       sync.Mutex
	r        *rand.Rand
	taken    map[string]int // event id: times taken
	lines    map[string]string
	calls    int
	failed   int
	rejected int
	broken   []string // limits broken
}

func newFlakySink(t *testing.T, limits Limits, failCalls, rejLines float64) (*flakySink, *httptest.Server) {
	f := &flakySink{t: t, limits: limits, failCalls: failCalls, rejLines: rejLines,
		r: rand.New(rand.NewPCG(7, 9)), taken: map[string]int{}, lines: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *flakySink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lines := bytes.SplitAfter(body, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	var records []Record
	i := 0
	for _, c := range strings.Split(r.Header.Get(RecordLinesHeader), ",") {
		n, err := strconv.Atoi(c)
		if err != nil || i+n > len(lines) {
			http.Error(w, "bad "+RecordLinesHeader, http.StatusBadRequest)
			return
		}
		records = append(records, Record{Data: bytes.Join(lines[i:i+n], nil), Events: n})
		i += n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.limits.Check(records); err != nil || i != len(lines) {
		f.broken = append(f.broken, fmt.Sprintf("%v (%d of %d lines in records)", err, i, len(lines)))
	}
	if f.onLine != nil {
		for _, line := range lines {
			f.onLine(line)
		}
	}
	if f.r.Float64() < f.failCalls {
		f.failed++
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	var ans HTTPAnswer
	for n, line := range lines {
		if f.r.Float64() < f.rejLines {
			ans.Rejected = append(ans.Rejected, RejectedLine{Line: n, Error: "throttled"})
			f.rejected++
			continue
		}
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(line, &ev); err != nil || ev.ID == "" {
			f.broken = append(f.broken, fmt.Sprintf("line %q: not an event", line))
		}
		f.taken[ev.ID]++
		f.lines[ev.ID] = string(line)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

func (f *flakySink) snapshot() (taken map[string]int, calls, failed, rejected int, broken []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps(f.taken), f.calls, f.failed, f.rejected, slices.Clone(f.broken)
}

func maps(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runExporter(t *testing.T, x *Exporter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestExporterRetriesRejectedRecordsAndFailedCallsUntilTheHTTPSinkTakesEveryEvent(t *testing.T) {
	f, srv := newFlakySink(t, smallLimits, 0.2, 0.05)
	sink, err := NewHTTPSink(srv.URL+"/events", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewExporter(sink, ExporterConfig{Limits: smallLimits, BatchWait: 5 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runExporter(t, x)
	const n = 1500
	r := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		if err := x.offer(fmt.Sprintf("e%d", i), testLine(i, r.IntN(200))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "every event taken", func() bool { return x.Pending() == 0 })
	taken, calls, failed, rejected, broken := f.snapshot()
	if len(broken) > 0 {
		t.Fatalf("limits broken: %v", broken)
	}
	for i := range n {
		id := fmt.Sprintf("e%d", i)
		if taken[id] != 1 {
			// The sink keeps nothing of a failed call or a rejected line,
			// so only those are sent again.
			t.Fatalf("event %s taken %d times, want once", id, taken[id])
		}
		if x.status(id) != statusAccepted {
			t.Fatalf("event %s taken but not accepted", id)
		}
	}
	if failed == 0 || rejected == 0 {
		t.Fatalf("the sink failed %d calls and rejected %d lines: the test exercised no retry", failed, rejected)
	}
	t.Logf("%d events in %d calls: %d calls failed, %d lines rejected", n, calls, failed, rejected)
}

func TestHTTPSinkFailsTheCallOnAnAnswerItCannotRead(t *testing.T) {
	answers := []struct {
		status int
		body   string
		want   string
	}{
		{http.StatusTooManyRequests, "slow down\n", "429 Too Many Requests: slow down"},
		{http.StatusOK, "not json", "answer is not an HTTPAnswer"},
		{http.StatusOK, `{"rejected":[{"line":5}]}`, "answer rejects line 5 of 2"},
	}
	for _, a := range answers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(a.status)
			_, _ = io.WriteString(w, a.body)
		}))
		sink, err := NewHTTPSink(srv.URL, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		_, err = sink.Put(context.Background(), []Record{{Data: testLine(0, 1), Events: 1}, {Data: testLine(1, 1), Events: 1}})
		if err == nil || !strings.Contains(err.Error(), a.want) {
			t.Errorf("answer %d %q: Put = %v, want %q", a.status, a.body, err, a.want)
		}
		srv.Close()
	}
	if _, err := NewHTTPSink("ftp://host/x", nil); err == nil {
		t.Error("NewHTTPSink takes an ftp url")
	}
}

func TestNewHTTPSinkRefusesAURLNoCallCouldBeSentTo(t *testing.T) {
	for _, url := range []string{"http://", "https://", "http://[::1", "http://[::1/events", "http://host:port/x", "http:/events"} {
		if _, err := NewHTTPSink(url, nil); err == nil || !strings.Contains(err.Error(), url) {
			t.Errorf("NewHTTPSink(%q) = %v, want an error naming the url", url, err)
		}
	}
	for _, url := range []string{"http://127.0.0.1:8080/events", "https://ingest.example.com/events?stream=a", "http://[::1]:8080/"} {
		if _, err := NewHTTPSink(url, nil); err != nil {
			t.Errorf("NewHTTPSink(%q) = %v", url, err)
		}
	}
}

func TestHTTPSinkRejectsTheRecordsOfTheRejectedLines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(HTTPAnswer{Rejected: []RejectedLine{{Line: 2, Error: "full"}, {Line: 3, Error: "full"}}})
	}))
	defer srv.Close()
	sink, err := NewHTTPSink(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	two := Record{Data: append(testLine(0, 1), testLine(1, 1)...), Events: 2}
	errs, err := sink.Put(context.Background(), []Record{two, two, two})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 3 || errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errs = %v, want only record 1 rejected", errs)
	}
	var le *LinesError
	if !errors.As(errs[1], &le) || !slices.Equal(le.Lines, []int{0, 1}) || !strings.Contains(errs[1].Error(), "line 2 rejected: full") {
		t.Errorf("errs[1] = %v, want lines 0 and 1 of the record not taken", errs[1])
	}
}

// readLines reads the files of dir whose names match pattern, in order of
// name.
func readLines(t *testing.T, dir, pattern string) (files []string, lines []string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		files = append(files, filepath.Base(name))
	}
	return files, lines
}

func TestFileSinkRotatesBySizeAndWritesEveryEventOnce(t *testing.T) {
	dir := t.TempDir()
	sink, err := NewFileSink(FileSinkConfig{Dir: dir, MaxFileBytes: 2000, MaxFileAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewExporter(sink, ExporterConfig{Limits: smallLimits, BatchWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	const n = 300
	var want []string
	for i := range n {
		line := testLine(i, i%100)
		want = append(want, strings.TrimSuffix(string(line), "\n"))
		if err := x.offer(fmt.Sprintf("e%d", i), line); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every event written", func() bool { return x.Pending() == 0 })
	cancel() // Run closes the sink, which finishes the last file
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	files, lines := readLines(t, dir, "*")
	if !slices.Equal(lines, want) {
		t.Fatalf("files hold %d lines, want the %d events in order", len(lines), n)
	}
	if len(files) < 5 {
		t.Fatalf("%d files, want a rotation every 2000 bytes: %v", len(files), files)
	}
	for _, name := range files {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, ".jsonl") || st.Size() > 2000+int64(smallLimits.MaxCallBytes) {
			t.Errorf("file %s of %d bytes: want a finished file of at most one call past 2000 bytes", name, st.Size())
		}
	}
}

func TestFileSinkFinishesAFileOnceItIsOld(t *testing.T) {
	dir := t.TempDir()
	sink, err := NewFileSink(FileSinkConfig{Dir: dir, MaxFileAge: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if _, err := sink.Put(context.Background(), []Record{{Data: testLine(1, 1), Events: 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the file finished", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "events-*.jsonl"))
		return len(m) == 1
	})
	if _, err := sink.Put(context.Background(), []Record{{Data: testLine(2, 1), Events: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files, lines := readLines(t, dir, "*")
	if len(files) != 2 || len(lines) != 2 {
		t.Fatalf("files %v with %d lines, want two files of one line", files, len(lines))
	}
}

func TestFileSinkCutsAFileACrashLeftOpenBackToItsLastWholeLine(t *testing.T) {
	dir := t.TempDir()
	torn := filepath.Join(dir, "events-20260101T000000.000Z-000001.jsonl.open")
	if err := os.WriteFile(torn, []byte("{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "events-20260101T000000.000Z-000002.jsonl.open")
	if err := os.WriteFile(empty, []byte("{\"id\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	sink, err := NewFileSink(FileSinkConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files, lines := readLines(t, dir, "*")
	if !slices.Equal(files, []string{"events-20260101T000000.000Z-000001.jsonl"}) || !slices.Equal(lines, []string{`{"id":"a"}`, `{"id":"b"}`}) {
		t.Fatalf("files %v, lines %q", files, lines)
	}
}

// TestZeroLimitsAreFirehosesPutRecordBatchLimits pins the defaults the
// export is specified with: 500 records a call, 1000 events a record,
// 1,000 KiB a record and 4 MiB a call; 600,000 pending events; buckets of
// 10s.
func TestZeroLimitsAreFirehosesPutRecordBatchLimits(t *testing.T) {
	want := Limits{MaxRecordsPerCall: 500, MaxEventsPerRecord: 1000, MaxRecordBytes: 1000 * 1024, MaxCallBytes: 4 * 1024 * 1024}
	if got := (Limits{}).withDefaults(); got != want {
		t.Errorf("zero limits: %+v, want %+v", got, want)
	}
	if got := (ExporterConfig{}).withDefaults(); got.Limits != want || got.PendingLimit != 600_000 {
		t.Errorf("zero exporter config: limits %+v, pending limit %d; want %+v and 600000", got.Limits, got.PendingLimit, want)
	}
	if DefaultBucket != 10*time.Second {
		t.Errorf("default bucket %s, want 10s", DefaultBucket)
	}
}
