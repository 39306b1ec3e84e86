package export

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

const e2ePartitions = 4

func startTestBroker(t *testing.T, opts ...broker.Opt) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, opts...)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// updates is a generated run of counter updates: every record to produce,
// bucket by bucket, and the latest value of every (key, bucket) by event
// id, the events the export must ship.
type updates struct {
	buckets [][]*kgo.Record
	latest  map[string]int64
}

// genUpdates makes n buckets of updates of realistic keys: several
// services, applications and users, metrics and response codes, all
// periods, up to six updates per key per bucket at distinct times and
// with values in no order, so that the latest is not the largest. Week and
// eternity keys and a few unparsable keys are among them and make no event.
func genUpdates(r *rand.Rand, start time.Time, bucket time.Duration, n int) updates {
	var keys []string
	for _, svc := range []string{"1006", "2001"} {
		for _, who := range []string{"", "/cinstance:a60", "/cinstance:b7", "/uinstance:alice"} {
			for _, what := range []string{"/metric:hits", "/metric:255", "/response_code:200", "/response_code:5XX"} {
				prefix := "stats/{service:" + svc + "}" + who + what
				keys = append(keys, prefix+"/hour:2016010411", prefix+"/day:20160104", prefix+"/minute:201601041145",
					prefix+"/month:20160101", prefix+"/year:20160101", prefix+"/week:20160104", prefix+"/eternity")
			}
		}
	}
	keys = append(keys, "stats/{service:1}/metric:2/hour:2016010410", "not-a-stats-key")
	u := updates{latest: map[string]int64{}}
	for b := range n {
		bstart := start.Add(time.Duration(b) * bucket)
		var recs []*kgo.Record
		for _, key := range keys {
			k, err := ParseStatsKey(key)
			count := r.IntN(7)
			ms := r.Perm(int(bucket / time.Millisecond))[:count]
			best := -1
			for i, m := range ms {
				v := r.Int64N(1_000_000)
				recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprint(v)), Timestamp: bstart.Add(time.Duration(m) * time.Millisecond)})
				if best < 0 || m > ms[best] {
					best = i
					if err == nil && k.Exported() {
						u.latest[EventID(key, bstart.Add(bucket))] = v
					}
				}
			}
		}
		r.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		u.buckets = append(u.buckets, recs)
	}
	return u
}

func produceBuckets(t *testing.T, cl *kgo.Client, u updates) int {
	t.Helper()
	n := 0
	for _, recs := range u.buckets {
		for _, r := range recs {
			r.Topic = DefaultInput
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		n += len(recs)
	}
	return n
}

func newInputClient(t *testing.T, b *broker.Broker) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(DefaultInput))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), e2ePartitions, 1, nil, DefaultInput); err != nil {
		t.Fatal(err)
	}
	return cl
}

// watchSent checks every line any call carries, taken or not, against the
// latest values: it records a line of another value, and an id that no
// bucket has.
type watchSent struct {
	mu     sync.Mutex
	latest map[string]int64
	wrong  []string
}

func (w *watchSent) line(line []byte) {
	var ev Event
	err := json.Unmarshal(line, &ev)
	w.mu.Lock()
	defer w.mu.Unlock()
	want, ok := w.latest[ev.ID]
	switch {
	case err != nil:
		w.wrong = append(w.wrong, fmt.Sprintf("%q: %v", line, err))
	case !ok:
		w.wrong = append(w.wrong, "no such bucket: "+ev.ID)
	case ev.Value != want:
		w.wrong = append(w.wrong, fmt.Sprintf("%s: value %d, the latest is %d", ev.ID, ev.Value, want))
	}
}

func (w *watchSent) errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.wrong...)
}

var e2eLimits = Limits{MaxRecordsPerCall: 6, MaxEventsPerRecord: 25, MaxRecordBytes: 6000, MaxCallBytes: 20000}

func e2eConfig(b *broker.Broker, sink Sink, stateDir string) Config {
	return Config{
		Brokers:     b.Addrs(),
		Sink:        sink,
		Group:       GroupConfig{Bucket: time.Second, ResendAfter: 300 * time.Millisecond},
		Exporter:    ExporterConfig{Limits: e2eLimits, BatchWait: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		IdleAdvance: 300 * time.Millisecond,
		Storage:     pebble.Builder(stateDir),
		Options:     []sluice.ProcessorOpt{sluice.TopicDefaults(e2ePartitions, 1), sluice.CommitInterval(100 * time.Millisecond)},
	}
}

func TestExportShipsTheLatestValueOfEveryKeyAndBucketToAFlakyHTTPSinkOnTheBroker(t *testing.T) {
	b := startTestBroker(t)
	cl := newInputClient(t, b)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	u := genUpdates(rand.New(rand.NewPCG(11, 12)), start, time.Second, 12)

	f, srv := newFlakySink(t, e2eLimits, 0.2, 0.05)
	w := &watchSent{latest: u.latest}
	f.onLine = w.line
	sink, err := NewHTTPSink(srv.URL+"/events", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	n := produceBuckets(t, cl, u)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, e2eConfig(b, sink, t.TempDir())) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	waitFor(t, 120*time.Second, "every (key, bucket) taken", func() bool {
		taken, _, _, _, _ := f.snapshot()
		for id := range u.latest {
			if taken[id] == 0 {
				return false
			}
		}
		return true
	})
	taken, calls, failed, rejected, broken := f.snapshot()
	if len(broken) > 0 {
		t.Fatalf("limits broken: %v", broken)
	}
	if wrong := w.errors(); len(wrong) > 0 {
		t.Fatalf("%d lines sent that are not the latest value of their bucket, first %s", len(wrong), wrong[0])
	}
	if failed == 0 || rejected == 0 {
		t.Fatalf("the sink failed %d calls and rejected %d lines: no retry was exercised", failed, rejected)
	}
	dups := 0
	for _, c := range taken {
		dups += c - 1
	}
	t.Logf("%d updates, %d events (dedupe %.1fx), %d calls (%d failed), %d lines rejected, %d events taken twice or more",
		n, len(u.latest), float64(n)/float64(len(u.latest)), calls, failed, rejected, dups)
}

func TestExportWritesTheLatestValueOfEveryKeyAndBucketToRotatedFilesOnTheBroker(t *testing.T) {
	b := startTestBroker(t)
	cl := newInputClient(t, b)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	u := genUpdates(rand.New(rand.NewPCG(41, 42)), start, time.Second, 8)
	produceBuckets(t, cl, u)
	dir := t.TempDir()
	sink, err := NewFileSink(FileSinkConfig{Dir: dir, MaxFileBytes: 64 << 10, MaxFileAge: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, e2eConfig(b, sink, t.TempDir())) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var files []string
	got := map[string]int64{}
	waitFor(t, 120*time.Second, "every (key, bucket) in a finished file", func() bool {
		var lines []string
		files, lines = readLines(t, dir, "*.jsonl")
		for _, line := range lines {
			var ev Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			got[ev.ID] = ev.Value
		}
		for id := range u.latest {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	})
	for id, v := range got {
		if want, ok := u.latest[id]; !ok || v != want {
			t.Errorf("%s: value %d, the latest is %d (%v)", id, v, want, ok)
		}
	}
	if len(files) < 3 {
		t.Errorf("%d finished files, want rotation by size and age: %v", len(files), files)
	}
	t.Logf("%d events in %d files", len(got), len(files))
}

func TestExportServesItsPendingEventsAndSinkErrorsAtTheMonitorsMetrics(t *testing.T) {
	b := startTestBroker(t)
	cl := newInputClient(t, b)
	u := genUpdates(rand.New(rand.NewPCG(51, 52)), time.Now().Add(-time.Hour).Truncate(time.Second), time.Second, 3)
	produceBuckets(t, cl, u)
	f, srv := newFlakySink(t, e2eLimits, 0.5, 0)
	sink, err := NewHTTPSink(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2eConfig(b, sink, t.TempDir())
	cfg.MonitorAddr = "127.0.0.1:0"
	addr := make(chan net.Addr, 1)
	cfg.MonitorReady = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String() + "/metrics"
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	waitFor(t, 60*time.Second, "every event taken", func() bool {
		taken, _, _, _, _ := f.snapshot()
		return len(taken) == len(u.latest)
	})
	var metrics string
	waitFor(t, 30*time.Second, "the metrics to say nothing is pending", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		metrics = string(body)
		return strings.Contains(metrics, "\nsluice_export_pending_events 0\n")
	})
	for _, want := range []string{
		"\nsluice_export_events_sent_total " + strconv.Itoa(len(u.latest)) + "\n",
		"\nsluice_export_paused 0\n",
		`sluice_export_sink_errors_total{kind="call"}`,
		`sluice_export_updates_skipped_total{period="week"}`,
		"\nsluice_export_events_total " + strconv.Itoa(len(u.latest)) + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
