package sluice_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

// windowCounts counts the records of "wclicks" per key in tumbling 10s
// windows, kept 10s after they close, and emits each final result to
// "wresults" as "<key> <start> <count>", the start in Unix seconds.
func windowCounts() *sluice.Group[struct{}] {
	g := sluice.DefineGroup[struct{}]("wcounts")
	out := sluice.Output(g, "wresults", codec.String())
	agg := sluice.Aggregate(g, "n", sluice.Tumbling(10*time.Second).Retain(20*time.Second), sluice.Aggregator[string, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
		Codec: codec.Int64(),
	}, func(ctx *sluice.Context[struct{}], r sluice.WindowResult[int64]) error {
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s %d %d", r.Key, r.Window.Start.Unix(), r.Value))
	})
	sluice.WindowedInput(g, "wclicks", codec.String(), agg)
	return g
}

func TestOpenWindowsSurviveARestartAndMoveWithARebalanceExactlyOnce(t *testing.T) {
	const (
		partitions = 2
		keys       = 8
	)
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(partitions))
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("wresults"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	produceAt := func(sec int64) {
		t.Helper()
		for k := range keys {
			r := &kgo.Record{Topic: "wclicks", Key: fmt.Appendf(nil, "k%d", k), Value: []byte("click"), Timestamp: time.Unix(sec, 0)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	start := func(dir string, reg prometheus.Registerer) (*sluice.Processor[struct{}], *running) {
		t.Helper()
		opts := append(processorOpts(b, partitions, dir), sluice.Guarantee(sluice.ExactlyOnce), sluice.Metrics(reg))
		p, err := sluice.NewProcessor(windowCounts(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return p, runInBackground(t, p.Run)
	}
	consumed := func(ps ...*sluice.Processor[struct{}]) func(n int64) func() error {
		return func(n int64) func() error {
			return func() error {
				var got int64
				for _, p := range ps {
					got += p.Stats().Consumed
				}
				if got < n {
					return fmt.Errorf("consumed %d of %d records", got, n)
				}
				return nil
			}
		}
	}

	// The first processor closes [0,10) and stops with [10,20) open.
	produceAt(1)
	produceAt(2)
	produceAt(11)
	p1, r1 := start(t.TempDir(), prometheus.NewRegistry())
	waitFor(t, 60*time.Second, consumed(p1)(3*keys))
	r1.stop(t)

	// Two more, on empty state dirs: they restore the windows from the
	// changelog, and the second takes partitions from the first.
	reg := prometheus.NewRegistry()
	produceAt(13)
	p2, _ := start(t.TempDir(), reg)
	waitFor(t, 60*time.Second, consumed(p2)(keys))
	p3, _ := start(t.TempDir(), reg)
	waitFor(t, 60*time.Second, func() error {
		for _, p := range []*sluice.Processor[struct{}]{p2, p3} {
			s := p.Stats()
			if len(s.Partitions) == 0 || slices.ContainsFunc(s.Partitions, func(st sluice.PartitionStatus) bool { return st.State != "running" }) {
				return fmt.Errorf("%d partitions of %s, not all running", len(s.Partitions), s.Group)
			}
		}
		return nil
	})
	for _, sec := range []int64{15, 21, 31, 100} {
		produceAt(sec)
	}

	expectWindowResults(t, cl, keys, 90*time.Second, "a run without a restart or a rebalance")

	// Every key has its window [100,110) open.
	waitFor(t, 30*time.Second, func() error {
		fams, err := reg.Gather()
		if err != nil {
			return err
		}
		open := seriesSum(fams, "sluice_windows_open")
		if open != keys {
			return fmt.Errorf("sluice_windows_open sums to %v, want %d", open, keys)
		}
		if finals := seriesSum(fams, "sluice_window_results_total"); finals < 2*keys {
			return fmt.Errorf("sluice_window_results_total sums to %v, want at least %d", finals, 2*keys)
		}
		return nil
	})
}

func seriesSum(fams []*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestProcessorClosesTheLastWindowOfAnIdlePartition(t *testing.T) {
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(1))
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("wresults"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	// A record 100ms before the end of its window: the window closes once
	// the partition has been idle for 200ms and stream time, following the
	// wall clock from the record's time on, has passed the window's end.
	at := time.Unix(1_800_000_009, 900_000_000)
	r := &kgo.Record{Topic: "wclicks", Key: []byte("k"), Value: []byte("click"), Timestamp: at}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	runProcessor(t, windowCounts(), append(processorOpts(b, 1, t.TempDir()), sluice.IdleAdvance(200*time.Millisecond))...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatalf("no result: %v", err)
	}
	want := fmt.Sprintf("k %d 1", at.Truncate(10*time.Second).Unix())
	if got := string(fs.Records()[0].Value); got != want {
		t.Errorf("result %q, want %q", got, want)
	}
}

// expectWindowResults reads cl's results of the window tests' scenario
// until every one of the keys has its last window's, and fails the test
// unless they are those of a run without interruption, what: each key's
// counts of [0,10), [10,20), [20,30) and [30,40), once each.
func expectWindowResults(t *testing.T, cl *kgo.Client, keys int, timeout time.Duration, what string) {
	t.Helper()
	var want, got []string
	for k := range keys {
		for _, w := range []string{"0 2", "10 3", "20 1", "30 1"} {
			want = append(want, fmt.Sprintf("k%d %s", k, w))
		}
	}
	// Each partition's results are in order, so once every key's last
	// window is in, so is every result before it, duplicates included.
	last := make(map[string]bool)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(last) < keys {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("results so far %q", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Value))
			if strings.HasSuffix(string(r.Value), " 30 1") {
				last[string(r.Key)] = true
			}
		})
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("results\n%s\nwant those of %s\n%s", strings.Join(got, "\n"), what, strings.Join(want, "\n"))
	}
}
