package bench

// What every benchmark of this package shares: a size that can be lowered
// for quick runs, embedded brokers, topic set-up and pre-filling, and the
// way results are reported.
//
// Each side of a comparison gets a broker of its own (or, where it only
// reads, a pre-filled topic it cannot change), so the two sides never see
// each other's records, offsets or groups. Broker compaction is put off for
// the duration: kfake compacts inside its request loop, which would stall
// whichever side happened to be running at the time.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
)

const (
	// partitions is the partition count of every topic of the benchmarks.
	partitions = 10
	// defaultRecords is the size of a full run.
	defaultRecords = 1_000_000
	// commitInterval is how often both sides of BenchmarkCountGroup commit:
	// the shortest interval kgo accepts. A sluice run ends at the first
	// commit after its last record is durable, on average half an interval
	// later, so its time comes in steps of about 100ms.
	commitInterval = 100 * time.Millisecond
	// completionPollInterval is how often the end of a sluice run is
	// looked for.
	completionPollInterval = 10 * time.Millisecond
	// runTimeout bounds one measured run.
	runTimeout = 10 * time.Minute
)

var recordsFlag = flag.Int("records", 0,
	"records per benchmark run (default $SLUICE_BENCH_RECORDS, else 1000000)")

// benchRecords returns how many records a benchmark run uses: the -records
// flag, else $SLUICE_BENCH_RECORDS, else defaultRecords.
func benchRecords(b *testing.B) int {
	b.Helper()
	if *recordsFlag > 0 {
		return *recordsFlag
	}
	if s := os.Getenv("SLUICE_BENCH_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SLUICE_BENCH_RECORDS=%q: want a positive integer", s)
		}
		return n
	}
	return defaultRecords
}

// startBroker starts an in-memory embedded broker that is closed when tb
// ends.
func startBroker(tb testing.TB) *broker.Broker {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	br, err := broker.Start(ctx, broker.CompactionInterval(24*time.Hour))
	if err != nil {
		tb.Fatalf("start broker: %v", err)
	}
	tb.Cleanup(func() { _ = br.Close() })
	return br
}

// newClient returns a client of br with opts; the caller closes it.
func newClient(tb testing.TB, br *broker.Broker, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(br.Addrs()...)}, opts...)...)
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	return cl
}

// createTopic creates topic with the benchmarks' partition count, compacted
// if asked.
func createTopic(tb testing.TB, cl *kgo.Client, topic string, compacted bool) {
	tb.Helper()
	var configs map[string]*string
	if compacted {
		configs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
}

// produceAll writes n records made by rec(i) with cl, whose partitioner
// must be kgo's default (murmur2 for keyed records), and waits for all of
// them to be acknowledged.
func produceAll(tb testing.TB, cl *kgo.Client, n int, rec func(i int) *kgo.Record) {
	tb.Helper()
	var produced firstError
	promise := produced.promise
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	for i := range n {
		cl.Produce(ctx, rec(i), promise)
	}
	if err := cl.Flush(ctx); err != nil {
		tb.Fatalf("flush: %v", err)
	}
	if err := produced.get(); err != nil {
		tb.Fatalf("produce: %v", err)
	}
}

// endOffsets returns the sum of the high watermarks of topic's partitions,
// which is its record count for a topic without transactions or deletions.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, int64, error) {
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	if err := listed.Error(); err != nil {
		return nil, 0, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	ends := make(map[int32]int64)
	var sum int64
	listed.Each(func(o kadm.ListedOffset) {
		ends[o.Partition] = o.Offset
		sum += o.Offset
	})
	return ends, sum, nil
}

// expectRecords fails tb unless topic holds exactly n records.
func expectRecords(tb testing.TB, br *broker.Broker, topic string, n int) {
	tb.Helper()
	if got := countRecords(tb, br, topic); got != int64(n) {
		tb.Fatalf("%s holds %d records, want %d", topic, got, n)
	}
}

// countRecords returns how many records topic holds.
func countRecords(tb testing.TB, br *broker.Broker, topic string) int64 {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addrs()...))
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, sum, err := endOffsets(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

// measure runs work once per b.N with the timer running only during work;
// setup and teardown, which get the iteration's number, run with it
// stopped. It reports the records processed per second as "rec/s" and, where
// it can be read, the CPU time the whole process (client, broker, garbage
// collector) used per record during work as "cpu-ns/rec", and returns both.
func measure(b *testing.B, records int, setup func(i int), work func(ctx context.Context, i int) error, teardown func(i int)) result {
	b.Helper()
	b.StopTimer()
	var (
		cpu   time.Duration
		cpuOK = true
	)
	for i := range b.N {
		setup(i)
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		before, ok1 := processCPU()
		b.StartTimer()
		err := work(ctx, i)
		b.StopTimer()
		after, ok2 := processCPU()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		cpu += after - before
		cpuOK = cpuOK && ok1 && ok2
		teardown(i)
	}
	total := float64(records) * float64(b.N)
	res := result{rate: total / b.Elapsed().Seconds()}
	b.ReportMetric(res.rate, "rec/s")
	if cpuOK {
		res.cpuPerRecord = float64(cpu.Nanoseconds()) / total
		b.ReportMetric(res.cpuPerRecord, "cpu-ns/rec")
	}
	return res
}

// result is what measure found for one side.
type result struct {
	rate         float64 // records per second
	cpuPerRecord float64 // process CPU ns per record, 0 if unknown
}

// results collects the result of each side of a benchmark, by sub-benchmark
// name, to compare them once all sides have run.
type results struct {
	order []string
	res   map[string]result
}

func (r *results) set(name string, res result) {
	if r.res == nil {
		r.res = make(map[string]result)
	}
	if _, ok := r.res[name]; !ok {
		r.order = append(r.order, name)
	}
	r.res[name] = res
}

// ratio returns the rate of name over the rate of base, or false unless both
// ran.
func (r *results) ratio(name, base string) (float64, bool) {
	a, b := r.res[name].rate, r.res[base].rate
	if a == 0 || b == 0 {
		return 0, false
	}
	return a / b, true
}

// summary is one line with every side's rate and its ratio to base, as in
// "raw 1.35M rec/s, sluice 0.80M rec/s (ratio 0.59)", with the CPU used per
// record where known.
func (r *results) summary(base string) string {
	var s string
	for i, name := range r.order {
		if i > 0 {
			s += ", "
		}
		res := r.res[name]
		s += fmt.Sprintf("%s %.3gM rec/s", name, res.rate/1e6)
		if q, ok := r.ratio(name, base); ok && name != base {
			s += fmt.Sprintf(" (ratio %.2f)", q)
		}
		if res.cpuPerRecord > 0 {
			s += fmt.Sprintf(" [%.0f cpu-ns/rec]", res.cpuPerRecord)
		}
	}
	return s
}

// report records the result of side name in r and, for a side other than
// base, reports its ratio to base as the metric "ratio", so that it is in
// the benchmark's line too.
func (r *results) record(b *testing.B, name, base string, res result) {
	b.Helper()
	r.set(name, res)
	if q, ok := r.ratio(name, base); ok && name != base {
		b.ReportMetric(q, "ratio")
	}
}

// report prints the summary of a benchmark whose sides have all run, on a
// line of its own so that it stands out from the benchmark lines.
func (r *results) report(b *testing.B, base string) {
	b.Helper()
	if len(r.order) == 0 {
		return
	}
	fmt.Printf("%s: %s\n", b.Name(), r.summary(base))
}

// firstError keeps the first error of produce promises called from many
// goroutines.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) promise(_ *kgo.Record, err error) {
	if err != nil {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// rawGroupRun is the raw franz-go side of the group benchmarks: a consumer
// group member of group reading topic, which hands each record to handle
// with a promise for what handle produces. It returns once it has consumed
// n records, every produced record is acknowledged and the offsets of all n
// are committed, with a function that closes the client.
func rawGroupRun(ctx context.Context, addrs []string, group, topic string, n int,
	handle func(cl *kgo.Client, r *kgo.Record, promise func(*kgo.Record, error))) (stop func(), err error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitInterval(commitInterval),
	)
	if err != nil {
		return nil, fmt.Errorf("raw: client: %w", err)
	}
	defer func() {
		if err != nil {
			cl.Close()
		}
	}()
	var produced firstError
	consumed := 0
	for consumed < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("raw: consumed %d of %d records: %w", consumed, n, err)
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = fmt.Errorf("raw: fetch %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return nil, fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			consumed++
			handle(cl, r, produced.promise)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("raw: flush: %w", err)
	}
	if err := produced.get(); err != nil {
		return nil, fmt.Errorf("raw: produce: %w", err)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return nil, fmt.Errorf("raw: commit: %w", err)
	}
	return cl.Close, nil
}
