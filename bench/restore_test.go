package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
	"github.com/sluice-io/sluice/store/pebble"
)

const (
	// restoreGroup is the group of the processor restore; its table topic
	// is the table every side of BenchmarkRestore reads.
	restoreGroup = "bench"
	tableTopic   = restoreGroup + "-table"
	restoreInput = "bench-input"
)

// tableKey and tableValue make row i of the table: distinct keys, so that
// compaction cannot shrink it, and small values.
func tableKey(i int) []byte { return strconv.AppendInt([]byte("row-"), int64(i), 10) }

func tableValue(i int) []byte { return fmt.Appendf(nil, "value-%010d", i) }

// fillTable creates the compacted table topic and the processor's input
// topic on br and writes n distinct rows to the table.
func fillTable(tb testing.TB, br *broker.Broker, n int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	createTopic(tb, cl, tableTopic, true)
	createTopic(tb, cl, restoreInput, false)
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: tableTopic, Key: tableKey(i), Value: tableValue(i)}
	})
}

// rawRestore is the raw franz-go side of BenchmarkRestore: a direct consumer
// of every partition of the table from its start, with kgo's default
// settings, which reads until each partition reaches the high watermark it
// had when the read began. It returns how many rows it read.
func rawRestore(ctx context.Context, addrs []string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return 0, fmt.Errorf("raw: client: %w", err)
	}
	ends, _, err := endOffsets(ctx, kadm.NewClient(cl), tableTopic)
	cl.Close()
	if err != nil {
		return 0, fmt.Errorf("raw: %w", err)
	}
	from := make(map[int32]kgo.Offset)
	for p, end := range ends {
		if end > 0 {
			from[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err = kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{tableTopic: from}),
	)
	if err != nil {
		return 0, fmt.Errorf("raw: client: %w", err)
	}
	defer cl.Close()
	var rows, bytes int64
	for len(from) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return rows, fmt.Errorf("raw: read %d rows: %w", rows, err)
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = fmt.Errorf("raw: fetch %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return rows, fetchErr
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				rows++
				bytes += int64(len(r.Key) + len(r.Value))
			}
			if len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset+1 >= ends[fp.Partition] {
				delete(from, fp.Partition)
			}
		})
	}
	if bytes == 0 {
		return rows, fmt.Errorf("raw: read %d rows and no bytes", rows)
	}
	return rows, nil
}

// viewRestore is a sluice side of BenchmarkRestore: a view of the table with
// its rows kept by storage. It returns once WaitReady does, that is once the
// view holds every row the table had when Run began, with a function that
// stops the view.
func viewRestore(ctx context.Context, addrs []string, storage store.Builder) (*sluice.View[[]byte], func() error, error) {
	v, err := sluice.NewView(tableTopic, codec.Bytes(),
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(storage),
	)
	if err != nil {
		return nil, nil, err
	}
	run := start(v.Run)
	if err := v.WaitReady(ctx); err != nil {
		return nil, nil, fmt.Errorf("view: %w", errors.Join(err, run.stop()))
	}
	return v, run.stop, nil
}

// processorRestore is the processor side of BenchmarkRestore: a processor
// of a group whose table is the pre-filled table, started with an empty
// state dir, as on a new machine. Every input partition holds one record it
// has not processed; it returns once all of them are handled, which each
// task can do only after restoring its partition of the table, with a
// function that stops the processor.
func processorRestore(ctx context.Context, addrs []string, stateDir string) (func() error, error) {
	handled := make(chan struct{})
	var calls atomic.Int64
	g := sluice.DefineGroup[[]byte](restoreGroup)
	sluice.Persist(g, codec.Bytes())
	sluice.Input(g, restoreInput, codec.Bytes(), func(*sluice.Context[[]byte], []byte) error {
		// The table is shared by every side and every run, so the
		// handler leaves it as it is.
		if calls.Add(1) == partitions {
			close(handled)
		}
		return nil
	})
	p, err := sluice.NewProcessor(g,
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
	)
	if err != nil {
		return nil, err
	}
	run := start(p.Run)
	select {
	case <-handled:
		return run.stop, nil
	case <-run.done:
		return nil, fmt.Errorf("processor stopped after %d records: %v", calls.Load(), run.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("processor handled %d of %d records: %w", calls.Load(), partitions, errors.Join(ctx.Err(), run.stop()))
	}
}

// produceOnePerPartition writes one record to every partition of topic.
func produceOnePerPartition(tb testing.TB, br *broker.Broker, topic string) {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p := range int32(partitions) {
		r := &kgo.Record{Topic: topic, Partition: p, Key: []byte("wake-" + strconv.Itoa(int(p))), Value: []byte("x")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			tb.Fatalf("produce to %s/%d: %v", topic, p, err)
		}
	}
}

// restoreSide is one way of reading the whole table. setup, if any, runs
// before each measured run with the timer stopped; run returns once the
// table is read, with a function that checks the outcome and stops what run
// started. tb gives them their temporary directories.
type restoreSide struct {
	name  string
	setup func(tb testing.TB, br *broker.Broker)
	run   func(ctx context.Context, tb testing.TB, br *broker.Broker, n int) (stop func() error, err error)
}

// restoreSides are the sides of BenchmarkRestore in the order they run.
// Each reads the same table, and none writes it.
var restoreSides = []restoreSide{
	{name: "raw", run: func(ctx context.Context, _ testing.TB, br *broker.Broker, n int) (func() error, error) {
		rows, err := rawRestore(ctx, br.Addrs())
		if err == nil && rows != int64(n) {
			err = fmt.Errorf("raw: read %d rows, want %d", rows, n)
		}
		return func() error { return nil }, err
	}},
	{name: "view-pebble", run: func(ctx context.Context, tb testing.TB, br *broker.Broker, n int) (func() error, error) {
		return runView(ctx, br, n, pebble.Builder(tb.TempDir()))
	}},
	{name: "view-memory", run: func(ctx context.Context, _ testing.TB, br *broker.Broker, n int) (func() error, error) {
		return runView(ctx, br, n, memory.Builder())
	}},
	{
		name: "processor-pebble",
		setup: func(tb testing.TB, br *broker.Broker) {
			produceOnePerPartition(tb, br, restoreInput)
		},
		run: func(ctx context.Context, tb testing.TB, br *broker.Broker, _ int) (func() error, error) {
			return processorRestore(ctx, br.Addrs(), tb.TempDir())
		},
	},
}

// runView restores a view with storage and returns a function that checks
// a few of its n rows and stops it.
func runView(ctx context.Context, br *broker.Broker, n int, storage store.Builder) (func() error, error) {
	v, stop, err := viewRestore(ctx, br.Addrs(), storage)
	if err != nil {
		return nil, err
	}
	return func() error {
		err := checkRows(v, n)
		if serr := stop(); err == nil {
			err = serr
		}
		return err
	}, nil
}

// checkRows checks the first, middle and last of the n rows of the table.
func checkRows(v *sluice.View[[]byte], n int) error {
	for _, i := range []int{0, n / 2, n - 1} {
		got, err := v.Get(string(tableKey(i)))
		if err != nil {
			return fmt.Errorf("view: get row %d: %w", i, err)
		}
		if string(got) != string(tableValue(i)) {
			return fmt.Errorf("view: row %d is %q, want %q", i, got, tableValue(i))
		}
	}
	return nil
}

// BenchmarkRestore compares reading a compacted table of distinct keys to
// its end with the raw franz-go client and restoring it into sluice views
// and a sluice processor. See the package documentation.
func BenchmarkRestore(b *testing.B) {
	n := benchRecords(b)
	br := startBroker(b)
	fillTable(b, br, n)
	// One untimed read first, so that the side that runs first does not
	// also pay for warming up the broker and the heap after the fill.
	warm, cancel := context.WithTimeout(context.Background(), runTimeout)
	_, err := rawRestore(warm, br.Addrs())
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	var r results
	for _, side := range restoreSides {
		b.Run(side.name, func(b *testing.B) {
			var stop func() error
			res := measure(b, n,
				func(int) {
					if side.setup != nil {
						side.setup(b, br)
					}
					// Each side faults in a heap of its own: one run
					// on pages an earlier side left mapped saves the
					// kernel time of faulting them in, up to 100 ns a
					// row, which made the side after view-memory look
					// cheaper than the others.
					debug.FreeOSMemory()
				},
				func(ctx context.Context, _ int) (err error) {
					pprof.Do(ctx, pprof.Labels("side", side.name), func(ctx context.Context) {
						stop, err = side.run(ctx, b, br, n)
					})
					return err
				},
				func(int) {
					if err := stop(); err != nil {
						b.Fatal(err)
					}
				})
			r.record(b, side.name, "raw", res)
		})
	}
	r.report(b, "raw")
}
