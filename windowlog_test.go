package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// The key spaces of the rows sluice keeps in a group's table, as they are
// on the wire: the windows', and their aggregations' purge marks.
const (
	windowRowPrefix = "\x00sluice\x00w"
	purgeMarkPrefix = "\x00sluice\x00p"
)

// readRecords returns every record of topic up to its end offsets, read
// committed, without the control records.
func readRecords(t *testing.T, b *broker.Broker, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var recs []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d records, partitions %v not read to their end", topic, len(recs), left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return recs
}

// windowedRows returns the keys of the window rows the stores of group's
// partitions in dir hold.
func windowedRows(t *testing.T, dir, table string, partitions int32) []string {
	t.Helper()
	var keys []string
	for p := range partitions {
		st, err := pebble.Builder(dir)(table, p)
		if err != nil {
			t.Fatal(err)
		}
		it, err := st.Iter([]byte(windowRowPrefix), []byte(windowRowPrefix[:len(windowRowPrefix)-1]+"x"))
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			keys = append(keys, string(it.Key()))
		}
		if err := errors.Join(it.Err(), it.Close(), st.Close()); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// windowEnd returns the end, in Unix seconds, of the window row key k.
func windowEnd(k string) int64 {
	_, rest, _ := strings.Cut(strings.TrimPrefix(k, windowRowPrefix), "\x00")
	var end uint64
	for _, c := range []byte(rest[:8]) {
		end = end<<8 | uint64(c)
	}
	return int64(end^(1<<63)) / int64(time.Second)
}

// expectNoWindowTombstones checks the changelogs of group, read
// committed: its windows topic holds window rows and purge marks and no
// tombstone of a window, its table topic no window row.
func expectNoWindowTombstones(t *testing.T, b *broker.Broker, group string) {
	t.Helper()
	var windows, marks int
	for _, r := range readRecords(t, b, group+"-windows") {
		switch k := string(r.Key); {
		case strings.HasPrefix(k, windowRowPrefix):
			windows++
			if r.Value == nil {
				t.Errorf("%s-windows has a tombstone for the window row %q", group, k)
			}
		case strings.HasPrefix(k, purgeMarkPrefix):
			marks++
		default:
			t.Errorf("%s-windows has the row %q, which is not a window's", group, k)
		}
	}
	if windows == 0 || marks == 0 {
		t.Errorf("%s-windows has %d window rows and %d purge marks, want some of each", group, windows, marks)
	}
	for _, r := range readRecords(t, b, group+"-table") {
		if strings.HasPrefix(string(r.Key), windowRowPrefix) {
			t.Errorf("%s-table has the window row %q (value %q)", group, r.Key, r.Value)
		}
	}
}

func TestWindowsTopicIsCompactDeleteWithARetentionPastTheLongestWindow(t *testing.T) {
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(3))
	g := sluice.DefineGroup[struct{}]("wtopics")
	count := sluice.Aggregator[string, int64]{Init: func() int64 { return 0 }, Add: func(n int64, _ string, _ sluice.Point) int64 { return n + 1 }, Codec: codec.Int64()}
	drop := func(*sluice.Context[struct{}], sluice.WindowResult[int64]) error { return nil }
	short := sluice.Aggregate(g, "short", sluice.Tumbling(10*time.Second), count, drop)
	sessions := count
	sessions.Merge = func(a, b int64) int64 { return a + b }
	long := sluice.Aggregate(g, "long", sluice.Sessions(time.Minute).Grace(30*time.Second).Retain(2*time.Hour), sessions, drop)
	sluice.WindowedInput(g, "wtopics-in", codec.String(), short)
	sluice.WindowedInput(g, "wtopics-in2", codec.String(), long)
	runProcessor(t, g, append(processorOpts(b, 3, t.TempDir()), sluice.WindowsRetentionMargin(time.Hour))...)

	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...))
	adm := kadm.NewClient(cl)
	var configs kadm.ResourceConfigs
	waitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		configs, err = adm.DescribeTopicConfigs(ctx, g.WindowsTopic(), g.TableTopic())
		if err == nil {
			for _, c := range configs {
				err = errors.Join(err, c.Err)
			}
		}
		return err
	})
	want := map[string]map[string]string{
		g.WindowsTopic(): {"cleanup.policy": "compact,delete", "retention.ms": strconv.FormatInt((3 * time.Hour).Milliseconds(), 10)},
		g.TableTopic():   {"cleanup.policy": "compact"},
	}
	if len(configs) != len(want) {
		t.Fatalf("configs of %d topics, want %d", len(configs), len(want))
	}
	for _, rc := range configs {
		for name, value := range want[rc.Name] {
			got := "unset"
			if i := slices.IndexFunc(rc.Configs, func(c kadm.Config) bool { return c.Key == name }); i >= 0 {
				got = rc.Configs[i].MaybeValue()
			}
			if got != value {
				t.Errorf("%s: %s is %s, want %s", rc.Name, name, got, value)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	details, err := adm.ListTopics(ctx, g.WindowsTopic())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[g.WindowsTopic()].Partitions); n != 3 {
		t.Errorf("%s has %d partitions, want those of the input, 3", g.WindowsTopic(), n)
	}
}

func TestProcessorRefusesAWindowsTopicOfAnotherPartitionCount(t *testing.T) {
	b := startBroker(t, broker.AllowAutoTopicCreation())
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "wcounts-windows"); err != nil {
		t.Fatal(err)
	}
	p, err := sluice.NewProcessor(windowCounts(), processorOpts(b, 2, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(ctx)
	if cerr := (*sluice.CopartitionError)(nil); !errors.As(err, &cerr) || cerr.Counts["wcounts-windows"] != 3 {
		t.Fatalf("run: %v, want a CopartitionError that names wcounts-windows with 3 partitions", err)
	}
}

// windowClicks starts a broker of partitions partitions and returns it, a
// client reading the results topic wresults from its start, and a function
// that produces a click of each of keys keys to wclicks at a second.
func windowClicks(t *testing.T, partitions, keys int) (*broker.Broker, *kgo.Client, func(sec int64)) {
	t.Helper()
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(partitions))
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("wresults"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	produceAt := func(sec int64) {
		t.Helper()
		for k := range keys {
			r := &kgo.Record{Topic: "wclicks", Key: fmt.Appendf(nil, "k%d", k), Value: []byte("click"), Timestamp: time.Unix(sec, 0)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	return b, cl, produceAt
}

// TestPurgedWindowsWriteNoRecordAndAreNotRestored runs the window tests'
// scenario at least once: the windows go to the windows topic, a purged
// window writes no tombstone to either changelog, a processor that
// restores on an empty state dir loads no purged window, and the results
// across the restart are those of a run without it.
func TestPurgedWindowsWriteNoRecordAndAreNotRestored(t *testing.T) {
	const (
		partitions = 2
		keys       = 8
	)
	b, cl, produceAt := windowClicks(t, partitions, keys)
	start := func(dir string) (*sluice.Processor[struct{}], *running) {
		t.Helper()
		p, err := sluice.NewProcessor(windowCounts(), processorOpts(b, partitions, dir)...)
		if err != nil {
			t.Fatal(err)
		}
		return p, runInBackground(t, p.Run)
	}
	consumed := func(p *sluice.Processor[struct{}], n int64) func() error {
		return func() error {
			if got := p.Stats().Consumed; got < n {
				return fmt.Errorf("consumed %d of %d records", got, n)
			}
			return nil
		}
	}

	for _, sec := range []int64{1, 2, 11, 13, 15, 21} {
		produceAt(sec)
	}
	p1, r1 := start(t.TempDir())
	waitFor(t, 60*time.Second, consumed(p1, 6*keys))
	r1.stop(t)

	// On an empty state dir: [0,10) is purged (at 20s), [10,20) closed
	// and kept until 30s, [20,30) open.
	dir := t.TempDir()
	p2, r2 := start(dir)
	produceAt(31)
	produceAt(100)
	waitFor(t, 60*time.Second, consumed(p2, 2*keys))
	expectWindowResults(t, cl, keys, 90*time.Second, "a run without a restart")
	r2.stop(t)
	// The store that purged them holds no purged window either.
	expectOnlyWindowsEndingAt(t, windowedRows(t, dir, "wcounts-table", partitions), 110, keys)

	expectNoWindowTombstones(t, b, "wcounts")

	// A third processor restores on an empty state dir: of the windows,
	// only [100,110) is not purged at stream time 100 (those before
	// [90,100) were purged by 100s, and no key had one since).
	dir = t.TempDir()
	p3, r3 := start(dir)
	waitFor(t, 60*time.Second, func() error {
		s := p3.Stats()
		if len(s.Partitions) != partitions || slices.ContainsFunc(s.Partitions, func(st sluice.PartitionStatus) bool { return st.State != "running" }) {
			return fmt.Errorf("%d partitions, not all running", len(s.Partitions))
		}
		return nil
	})
	r3.stop(t)
	expectOnlyWindowsEndingAt(t, windowedRows(t, dir, "wcounts-table", partitions), 110, keys)
}

// expectOnlyWindowsEndingAt checks that the window rows of a store are n,
// all of windows that end at end (Unix seconds).
func expectOnlyWindowsEndingAt(t *testing.T, rows []string, end int64, n int) {
	t.Helper()
	for _, k := range rows {
		if got := windowEnd(k); got != end {
			t.Errorf("the store holds the window row %q, which ends at %ds: purged", k, got)
		}
	}
	if len(rows) != n {
		t.Errorf("the store holds %d window rows, want the %d that end at %ds", len(rows), n, end)
	}
}

func TestStandbyOfAGroupWithWindowsTakesOverWithExactResults(t *testing.T) {
	const (
		partitions = 2
		keys       = 8
	)
	b, cl, produceAt := windowClicks(t, partitions, keys)
	start := func() (*sluice.Processor[struct{}], *running) {
		t.Helper()
		p, err := sluice.NewProcessor(windowCounts(), append(processorOpts(b, partitions, t.TempDir()), sluice.Standbys(1))...)
		if err != nil {
			t.Fatal(err)
		}
		return p, runInBackground(t, p.Run)
	}
	for _, sec := range []int64{1, 2, 11, 13} {
		produceAt(sec)
	}
	pa, _ := start()
	pb, rb := start()
	// Each runs one partition and follows the other's, both topics.
	waitFor(t, 60*time.Second, func() error {
		consumed := pa.Stats().Consumed + pb.Stats().Consumed
		for _, p := range []*sluice.Processor[struct{}]{pa, pb} {
			s := p.Stats()
			if len(s.Partitions) != 1 || s.Partitions[0].State != "running" || len(s.Standbys) != 1 || s.Standbys[0].State != "following" || s.Standbys[0].Behind != 0 {
				return fmt.Errorf("%s: partitions %+v, standbys %+v", s.Group, s.Partitions, s.Standbys)
			}
		}
		if consumed < 4*keys {
			return fmt.Errorf("consumed %d of %d", consumed, 4*keys)
		}
		return nil
	})
	rb.stop(t)
	waitFor(t, 30*time.Second, func() error {
		if s := pa.Stats(); len(s.Partitions) != partitions {
			return fmt.Errorf("a runs %d partitions", len(s.Partitions))
		}
		return nil
	})
	for _, sec := range []int64{15, 21, 31, 100} {
		produceAt(sec)
	}
	expectWindowResults(t, cl, keys, 90*time.Second, "a run without a takeover")
}
