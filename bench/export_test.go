package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/export"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

const (
	exportInput = "export-updates"
	// exportKeys is how many counters the updates spread over.
	exportKeys = 50_000
	// exportBucket is the bucket size of both sides.
	exportBucket = 10 * time.Second
	// exportSpan is the event time the updates cover: four buckets, so
	// that each key has about five updates per bucket at 1M updates.
	exportSpan = 4 * exportBucket

	rawExportGroup    = "raw-export"
	sluiceExportGroup = "sluice-export"
	topicExportGroup  = "sluice-export-topic"
	topicExportOutput = "sluice-export-events"
)

// exportStart is the event time of the first update, on a bucket boundary.
var exportStart = time.Date(2016, 1, 4, 11, 0, 0, 0, time.UTC)

// exportKey is the stats key of counter k: 50 services, applications and
// users, metrics and response codes, hour and day periods; the ids hold k,
// so that every k has its own key.
func exportKey(k int) string {
	id := strconv.Itoa(k)
	var who, what string
	switch k % 3 {
	case 0:
		what = "/metric:m" + id
	case 1:
		who, what = "/cinstance:app"+id, "/metric:hits"
	case 2:
		who, what = "/uinstance:user"+id, "/response_code:"+[]string{"200", "2XX", "404", "4XX", "5XX"}[k%5]
	}
	period := "/hour:2016010411"
	if k%2 == 1 {
		period = "/day:20160104"
	}
	return "stats/{service:" + strconv.Itoa(k%50) + "}" + who + what + period
}

// fillExport writes n updates to exportInput, update i of key i%exportKeys
// at event time exportStart + i·exportSpan/n, and returns how many events
// (distinct key and bucket) they make.
func fillExport(tb testing.TB, br *broker.Broker, n int) int {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	createTopic(tb, cl, exportInput, false)
	events := make(map[string]struct{})
	keys := make([][]byte, exportKeys)
	for k := range keys {
		keys[k] = []byte(exportKey(k))
	}
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		at := exportStart.Add(time.Duration(int64(exportSpan) / int64(n) * int64(i)))
		key := keys[i%exportKeys]
		events[string(key)+"@"+at.Truncate(exportBucket).String()] = struct{}{}
		return &kgo.Record{Topic: exportInput, Key: key, Value: strconv.AppendInt(nil, int64(i), 10), Timestamp: at}
	})
	return len(events)
}

// rawExport is the raw franz-go side of BenchmarkExport: a consumer group
// member that keeps each key's latest value per bucket in a map and, once
// it has consumed all n updates, makes every bucket's events as JSON lines.
// It returns how many events it made.
func rawExport(ctx context.Context, addrs []string, n int) (events int, stop func(), err error) {
	type bucketKey struct {
		key string
		end int64
	}
	latest := make(map[bucketKey]int64, 4*exportKeys)
	stop, err = rawGroupRun(ctx, addrs, rawExportGroup, exportInput, n, func(_ *kgo.Client, r *kgo.Record, _ func(*kgo.Record, error)) {
		v, _ := strconv.ParseInt(string(r.Value), 10, 64)
		latest[bucketKey{string(r.Key), r.Timestamp.Truncate(exportBucket).Add(exportBucket).UnixNano()}] = v
	})
	if err != nil {
		return 0, nil, err
	}
	var buf bytes.Buffer
	for bk, v := range latest {
		b, err := json.Marshal(struct {
			Key     string `json:"key"`
			Value   int64  `json:"value"`
			TimeGen int64  `json:"time_gen"`
		}{bk.key, v, bk.end})
		if err != nil {
			return 0, nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		if buf.Len() > 4<<20 {
			buf.Reset()
		}
	}
	return len(latest), stop, nil
}

// countingSink accepts every call and counts the events, signalling when
// it has want of them.
type countingSink struct {
	mu      sync.Mutex
	events  int
	calls   int
	records int
	want    int
	done    chan struct{}
}

func (s *countingSink) Put(_ context.Context, records []export.Record) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, r := range records {
		s.events += r.Events
		s.records++
	}
	if s.events >= s.want && s.done != nil {
		close(s.done)
		s.done = nil
	}
	return nil, nil
}

// sluiceExport is the sluice side of BenchmarkExport: export.Run to a sink
// that accepts every call, with IdleAdvance(100ms) so that the last bucket
// closes once the input is read. It returns once the sink has received
// want events.
func sluiceExport(ctx context.Context, addrs []string, stateDir string, want int) (sink *countingSink, stop func() error, err error) {
	sink = &countingSink{want: want, done: make(chan struct{})}
	done := sink.done
	run := start(func(ctx context.Context) error {
		return export.Run(ctx, export.Config{
			Brokers:     addrs,
			Sink:        sink,
			Group:       export.GroupConfig{Name: sluiceExportGroup, Input: exportInput, Bucket: exportBucket},
			IdleAdvance: commitInterval,
			Storage:     pebble.Builder(stateDir),
			Options:     []sluice.ProcessorOpt{sluice.TopicDefaults(partitions, 1), sluice.CommitInterval(commitInterval)},
		})
	})
	select {
	case <-done:
		return sink, run.stop, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("sluice: %d of %d events: %w (run: %v)", sink.events, want, ctx.Err(), run.stop())
	}
}

// topicExport is the sluice side of BenchmarkExport with a Kafka sink: the
// events are outputs of the group's batches, with no pending rows, so the
// difference to sluiceExport is the cost of the pending rows and their
// timers. It returns once the output topic holds want events.
func topicExport(ctx context.Context, tb testing.TB, br *broker.Broker, stateDir string, want int) (stop func() error, err error) {
	cl := newClient(tb, br)
	defer cl.Close()
	createTopic(tb, cl, topicExportOutput, false)
	adm := kadm.NewClient(cl)
	run := start(func(ctx context.Context) error {
		return export.Run(ctx, export.Config{
			Brokers:     br.Addrs(),
			Topic:       topicExportOutput,
			Group:       export.GroupConfig{Name: topicExportGroup, Input: exportInput, Bucket: exportBucket},
			IdleAdvance: commitInterval,
			Storage:     pebble.Builder(stateDir),
			Options:     []sluice.ProcessorOpt{sluice.TopicDefaults(partitions, 1), sluice.CommitInterval(commitInterval)},
		})
	})
	for {
		_, sum, err := endOffsets(ctx, adm, topicExportOutput)
		if err == nil && sum >= int64(want) {
			return run.stop, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sluice-topic: %d of %d events: %w (run: %v)", sum, want, ctx.Err(), run.stop())
		case <-time.After(completionPollInterval):
		}
	}
}

// BenchmarkExport runs apps/export over 1M counter updates of 50,000 keys
// in 10 s buckets, to a sink (sluice) and to a Kafka topic (sluice-topic),
// against a raw kgo consumer that dedupes in a map (raw).
func BenchmarkExport(b *testing.B) {
	n := benchRecords(b)
	var r results
	for _, name := range []string{"raw", "sluice", "sluice-topic"} {
		b.Run(name, func(b *testing.B) {
			var (
				br     *broker.Broker
				want   int
				events int
				stop   func()
				sink   *countingSink
			)
			res := measure(b, n,
				func(int) {
					br = startBroker(b)
					want = fillExport(b, br, n)
				},
				func(ctx context.Context, _ int) (err error) {
					pprof.Do(ctx, pprof.Labels("side", name), func(ctx context.Context) {
						switch name {
						case "raw":
							events, stop, err = rawExport(ctx, br.Addrs(), n)
							return
						case "sluice-topic":
							var tstop func() error
							if tstop, err = topicExport(ctx, b, br, b.TempDir(), want); err == nil {
								events = want
								stop = func() {
									if err := tstop(); err != nil {
										b.Errorf("sluice-topic: stop: %v", err)
									}
								}
							}
							return
						}
						var sstop func() error
						sink, sstop, err = sluiceExport(ctx, br.Addrs(), b.TempDir(), want)
						if err == nil {
							events = want
							stop = func() {
								if err := sstop(); err != nil {
									b.Errorf("sluice: stop: %v", err)
								}
							}
						}
					})
					return err
				},
				func(int) {
					stop()
					if events != want {
						b.Errorf("%s: %d events, want %d", name, events, want)
					}
					b.ReportMetric(float64(n)/float64(want), "updates/event")
					if sink != nil {
						sink.mu.Lock()
						fmt.Printf("%s: %d updates, %d events (%.1f updates per event), %d calls of %d records\n",
							b.Name(), n, sink.events, float64(n)/float64(want), sink.calls, sink.records)
						sink.mu.Unlock()
					}
					_ = br.Close()
				})
			r.record(b, name, "raw", res)
		})
	}
	r.report(b, "raw")
}
