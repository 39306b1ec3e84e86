package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

const (
	inputTopic = "input"
	// keys is how many distinct keys the input records spread over.
	keys = 10_000
	// valueSize is the size of an input record's value.
	valueSize = 110

	rawGroup     = "raw-count"
	rawOutput    = "raw-counts"
	sluiceGroup  = "sluice-count"
	sluiceOutput = "sluice-counts"
)

// inputKey is the key of input record i.
func inputKey(i int) []byte { return strconv.AppendInt([]byte("key-"), int64(i%keys), 10) }

// inputValue is the value of input record i: a JSON event of valueSize bytes
// whose fields vary from record to record, so that it compresses about as
// well as real events do, not as well as filler would.
func inputValue(i int) []byte {
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	next := func() uint64 { // xorshift64
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	v := fmt.Appendf(nil, `{"seq":%d,"user":"key-%d","page":"/p/%x","agent":"%x","ms":%d,"pad":"`,
		i, i%keys, next()%(1<<20), next(), next()%1000)
	for len(v) < valueSize-2 {
		v = append(v, 'a'+byte(next()%26))
	}
	return append(v, '"', '}')[:valueSize]
}

// fillInput creates the input topic and the output topics of both sides on
// br and writes n input records to it, the same n records every time.
func fillInput(tb testing.TB, br *broker.Broker, n int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	createTopic(tb, cl, inputTopic, false)
	createTopic(tb, cl, rawOutput, false)
	createTopic(tb, cl, sluiceOutput, false)
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: inputTopic, Key: inputKey(i), Value: inputValue(i)}
	})
}

// rawCount is the raw franz-go side of BenchmarkCountGroup: a consumer group
// member that counts records per key and produces each key's new count,
// as decimal text, to rawOutput. It returns once it has consumed n records,
// every produced record is acknowledged and the offsets of all n are
// committed, with a function that closes the client.
func rawCount(ctx context.Context, addrs []string, n int) (stop func(), err error) {
	counts := make(map[string]int64, keys)
	return rawGroupRun(ctx, addrs, rawGroup, inputTopic, n, func(cl *kgo.Client, r *kgo.Record, promise func(*kgo.Record, error)) {
		c := counts[string(r.Key)] + 1
		counts[string(r.Key)] = c
		cl.Produce(ctx, &kgo.Record{Topic: rawOutput, Key: r.Key, Value: strconv.AppendInt(nil, c, 10)}, promise)
	})
}

// countGroup is the sluice side's group: it counts records per key in its
// table and emits each key's new count to sluiceOutput.
func countGroup() *sluice.Group[int64] {
	g := sluice.DefineGroup[int64](sluiceGroup)
	sluice.Persist(g, codec.Int64())
	out := sluice.Output(g, sluiceOutput, codec.Int64())
	sluice.Input(g, inputTopic, codec.Bytes(), func(ctx *sluice.Context[int64], _ []byte) error {
		n, _ := ctx.Value()
		n++
		ctx.SetValue(n)
		return out.Emit(ctx, ctx.Key(), n)
	})
	return g
}

// sluiceCount is the sluice side of BenchmarkCountGroup: a processor of
// countGroup with its table in Pebble under stateDir. It returns once the
// group has committed the offsets of all n input records, which sluice does
// only after their table changes and output records are acknowledged, with
// a function that stops the processor.
func sluiceCount(ctx context.Context, addrs []string, stateDir string, n int, extra ...sluice.ProcessorOpt) (stop func() error, err error) {
	p, err := sluice.NewProcessor(countGroup(), append([]sluice.ProcessorOpt{
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
	}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("sluice: %w", err)
	}
	run := start(p.Run)
	if err := waitCommitted(ctx, addrs, sluiceGroup, inputTopic, int64(n), run); err != nil {
		if serr := run.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("sluice: %w", err)
	}
	return run.stop, nil
}

// waitCommitted polls the offsets group committed for topic until they add
// up to n, ctx is done or the processor run stops early.
func waitCommitted(ctx context.Context, addrs []string, group, topic string, n int64, run *running) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(completionPollInterval)
	defer tick.Stop()
	var committed int64
	for {
		select {
		case <-run.done:
			return fmt.Errorf("processor stopped after committing %d of %d records: %v", committed, n, run.err)
		case <-ctx.Done():
			return fmt.Errorf("committed %d of %d records: %w", committed, n, ctx.Err())
		case <-tick.C:
		}
		offsets, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			continue // the group may not exist yet
		}
		committed = 0
		for p, o := range offsets[topic] {
			if o.Err != nil {
				return fmt.Errorf("committed offset of %s/%d: %w", topic, p, o.Err)
			}
			committed += o.At
		}
		if committed == n {
			return nil
		}
		if committed > n {
			return fmt.Errorf("committed %d records, more than the %d written", committed, n)
		}
	}
}

// running is a Run method running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned, set before done is closed
}

// start calls run in the background with a context that stop cancels.
func start(run func(context.Context) error) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx)
	}()
	return r
}

// stop cancels the run, waits for it to return and returns its error.
func (r *running) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// countSides returns the two sides of BenchmarkCountGroup by name. Each
// runs on a broker of its own, filled with the same input.
func countSides(tb testing.TB) map[string]countSide {
	return map[string]countSide{
		"raw": func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
			return rawCount(ctx, br.Addrs(), n)
		},
		"sluice": sluiceSide(tb, func(ctx context.Context, addrs []string, stateDir string, n int) (func() error, error) {
			return sluiceCount(ctx, addrs, stateDir, n)
		}),
	}
}

// sluiceSide is the side that start runs on the side's broker with a state
// dir of its own: start returns once the n records are durably processed,
// with the function that stops what it started.
func sluiceSide(tb testing.TB, start func(ctx context.Context, addrs []string, stateDir string, n int) (stop func() error, err error)) countSide {
	return func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
		stop, err := start(ctx, br.Addrs(), tb.TempDir(), n)
		if err != nil {
			return nil, err
		}
		return func() {
			if err := stop(); err != nil {
				tb.Errorf("sluice: stop: %v", err)
			}
		}, nil
	}
}

// countSide runs one side of BenchmarkCountGroup over the n records on br
// and returns once all of them are durably processed, with a function that
// stops what it started.
type countSide func(ctx context.Context, br *broker.Broker, n int) (stop func(), err error)

// BenchmarkCountGroup compares counting records per key and emitting every
// key's new count, with the raw franz-go client and with a sluice group
// whose table is kept in Pebble. See the package documentation.
func BenchmarkCountGroup(b *testing.B) {
	benchmarkCount(b, countSides, func(b *testing.B, br *broker.Broker, name string, n int) {
		expectRecords(b, br, outputOf(name), n)
		if name == "sluice" {
			// One changelog record per key and flush: how many
			// batches the tasks made of the input.
			b.Logf("changelog %s holds %d records", sluiceGroup+"-table", countRecords(b, br, sluiceGroup+"-table"))
		}
	})
}

// benchmarkCount is benchmarkSides over the count benchmarks' input.
func benchmarkCount(b *testing.B, sides func(testing.TB) map[string]countSide, verify func(b *testing.B, br *broker.Broker, name string, n int)) {
	benchmarkSides(b, fillInput, sides, verify)
}

// benchmarkSides runs the raw and the sluice side of a benchmark, each on a
// broker of its own filled with n records by fill, checks each side's
// output with verify after its run, and reports the ratio.
func benchmarkSides(b *testing.B, fill func(testing.TB, *broker.Broker, int), sides func(testing.TB) map[string]countSide, verify func(b *testing.B, br *broker.Broker, name string, n int)) {
	n := benchRecords(b)
	var r results
	for _, name := range []string{"raw", "sluice"} {
		b.Run(name, func(b *testing.B) {
			side := sides(b)[name]
			var (
				br   *broker.Broker
				stop func()
			)
			res := measure(b, n,
				func(int) {
					br = startBroker(b)
					fill(b, br, n)
				},
				func(ctx context.Context, _ int) (err error) {
					pprof.Do(ctx, pprof.Labels("side", name), func(ctx context.Context) {
						stop, err = side(ctx, br, n)
					})
					return err
				},
				func(int) {
					stop()
					verify(b, br, name, n)
					_ = br.Close()
				})
			r.record(b, name, "raw", res)
		})
	}
	r.report(b, "raw")
}

func outputOf(side string) string {
	if side == "raw" {
		return rawOutput
	}
	return sluiceOutput
}
