package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/wordcount"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

const (
	wordsTopic = "words-input"
	// vocabulary is how many distinct words the input spreads over.
	vocabulary = 10_000
	// wordBatch is the batch size of the sluice side.
	wordBatch = 1000

	rawWordGroup     = "raw-wordcount"
	rawWordOutput    = "raw-word-counts"
	sluiceWordGroup  = "sluice-wordcount"
	sluiceWordOutput = "sluice-word-counts"
)

// words returns the n input words: drawn from a vocabulary of vocabulary
// words by Zipf's law, as words occur in text (the most frequent one about
// a tenth of the time), the same n words every time.
func words(n int) [][]byte {
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.07, 1, vocabulary-1)
	ws := make([][]byte, n)
	for i := range ws {
		ws[i] = strconv.AppendUint([]byte("word"), z.Uint64(), 10)
	}
	return ws
}

// fillWords creates the word topics of both sides on br and writes n words
// to the input, each keyed by itself.
func fillWords(tb testing.TB, br *broker.Broker, n int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	createTopic(tb, cl, wordsTopic, false)
	createTopic(tb, cl, rawWordOutput, false)
	createTopic(tb, cl, sluiceWordOutput, false)
	ws := words(n)
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: wordsTopic, Key: ws[i], Value: ws[i]}
	})
}

// seenText is the output text of a word seen n times before.
func seenText(dst []byte, w []byte, n int64) []byte {
	dst = append(dst, w...)
	dst = append(dst, " has been seen "...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, " times"...)
}

// rawWordCount is the raw franz-go side of BenchmarkWordCount: a consumer
// group member that splits each value into words, counts them in a map
// and produces each word's text to rawWordOutput. It returns once it has
// consumed n records, every produced record is acknowledged and the offsets
// of all n are committed, with a function that closes the client.
func rawWordCount(ctx context.Context, addrs []string, n int) (stop func(), err error) {
	counts := make(map[string]int64, vocabulary)
	return rawGroupRun(ctx, addrs, rawWordGroup, wordsTopic, n, func(cl *kgo.Client, r *kgo.Record, promise func(*kgo.Record, error)) {
		for _, w := range strings.Fields(string(r.Value)) {
			c := counts[w]
			counts[w] = c + 1
			cl.Produce(ctx, &kgo.Record{Topic: rawWordOutput, Key: []byte(w), Value: seenText(nil, []byte(w), c)}, promise)
		}
	})
}

// sluiceWordCount is the sluice side of BenchmarkWordCount: a batch
// processor of the word count's counting group with batches of wordBatch
// records and its counts in its table, kept in Pebble under stateDir. It
// returns once the group has committed the offsets of all n input records,
// with the processor's batch statistics and a function that stops it.
func sluiceWordCount(ctx context.Context, addrs []string, stateDir string, n int) (stats func() wordStats, stop func() error, err error) {
	reg := prometheus.NewRegistry()
	p, err := sluice.NewBatchProcessor(wordcount.DefineCount(sluiceWordGroup, wordsTopic, sluiceWordOutput, nil),
		sluice.Brokers(addrs...),
		// For the batch latency histogram.
		sluice.Metrics(reg),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
		sluice.BatchSize(wordBatch),
		// The input is all there at the start: a partition's last,
		// partial batch is the only one that waits.
		sluice.BatchWait(commitInterval),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("sluice: %w", err)
	}
	run := start(p.Run)
	if err := waitCommitted(ctx, addrs, sluiceWordGroup, wordsTopic, int64(n), run); err != nil {
		if serr := run.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, nil, fmt.Errorf("sluice: %w", err)
	}
	stats = func() wordStats {
		return wordStats{BatchStats: p.Stats(), latency: gatheredHistogram(reg, "sluice_batch_duration_seconds")}
	}
	return stats, run.stop, nil
}

// wordStats are the batch counts of the sluice side, and the histogram of
// its batch latencies.
type wordStats struct {
	sluice.BatchStats
	latency *dto.Histogram
}

// wordSide runs one side of BenchmarkWordCount over the n words on br and
// returns once all of them are durably processed, with a function that
// stops what it started and, for sluice, its batch statistics.
type wordSide func(ctx context.Context, tb testing.TB, br *broker.Broker, n int) (stop func(), stats func() wordStats, err error)

var wordSides = map[string]wordSide{
	"raw": func(ctx context.Context, _ testing.TB, br *broker.Broker, n int) (func(), func() wordStats, error) {
		stop, err := rawWordCount(ctx, br.Addrs(), n)
		return stop, nil, err
	},
	"sluice": func(ctx context.Context, tb testing.TB, br *broker.Broker, n int) (func(), func() wordStats, error) {
		stats, stop, err := sluiceWordCount(ctx, br.Addrs(), tb.TempDir(), n)
		if err != nil {
			return nil, nil, err
		}
		return func() {
			if err := stop(); err != nil {
				tb.Errorf("sluice: stop: %v", err)
			}
		}, stats, nil
	},
}

func wordOutputOf(side string) string {
	if side == "raw" {
		return rawWordOutput
	}
	return sluiceWordOutput
}

// BenchmarkWordCount compares Kasper's word count, counting words and
// producing "<word> has been seen <N> times" for each, with the raw franz-go
// client and with a sluice batch processor whose counts are in its table
// in Pebble. See the package documentation.
func BenchmarkWordCount(b *testing.B) {
	n := benchRecords(b)
	var r results
	for _, name := range []string{"raw", "sluice"} {
		b.Run(name, func(b *testing.B) {
			var (
				br    *broker.Broker
				stop  func()
				stats func() wordStats
			)
			res := measure(b, n,
				func(int) {
					br = startBroker(b)
					fillWords(b, br, n)
				},
				func(ctx context.Context, _ int) (err error) {
					pprof.Do(ctx, pprof.Labels("side", name), func(ctx context.Context) {
						stop, stats, err = wordSides[name](ctx, b, br, n)
					})
					return err
				},
				func(int) {
					stop()
					expectRecords(b, br, wordOutputOf(name), n)
					if stats != nil {
						s := stats()
						p99 := quantile(s.latency, 0.99) * 1000
						b.ReportMetric(p99, "p99-batch-ms")
						b.ReportMetric(float64(s.Records)/float64(s.Batches), "rec/batch")
						fmt.Printf("%s: %d batches of %.0f records on average, batch latency p50 %.2fms p99 %.2fms\n",
							b.Name(), s.Batches, float64(s.Records)/float64(s.Batches), quantile(s.latency, 0.5)*1000, p99)
					}
					_ = br.Close()
				})
			r.record(b, name, "raw", res)
		})
	}
	r.report(b, "raw")
}
