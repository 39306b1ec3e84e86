package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

// rawTransactionalID is the transactional ID of the raw exactly-once side.
const rawTransactionalID = rawGroup + "-txn"

// txnCounts are the transactions one side of BenchmarkCountGroupExactlyOnce
// ended.
type txnCounts struct {
	commits, aborts int64
}

// rawCountExactlyOnce is the raw franz-go side of
// BenchmarkCountGroupExactlyOnce: a kgo.GroupTransactSession that counts
// records per key and produces each key's new count to rawOutput inside a
// transaction, which it ends, committing the offsets it polled, every
// commitInterval (the interval a sluice processor uses by default exactly
// once), or as soon as it has consumed the n-th record. It returns once the
// transaction holding the effects of the n-th record has committed, with a
// function that closes the session.
//
// It does what franz-go's documentation of GroupTransactSession asks of an
// exactly-once loop: read committed records only, collect produce errors
// with an aborting promise and commit only when there were none, treat an
// error from End as fatal, and, when End returns committed=false (a
// rebalance, or a produce failure, aborted the transaction, and the session
// rewound its offsets to the last commit), roll its state back to the last
// commit too. So its counts are exact: the map holds only what committed
// transactions counted, and the open transaction's new counts are kept
// apart until End commits them.
//
// abort, if not nil, is asked before each End whether to end that
// transaction (numbered from 1) with an abort instead, which tests use to
// check the rollback.
func rawCountExactlyOnce(ctx context.Context, addrs []string, n int, abort func(txn int) bool) (stop func(), txns txnCounts, err error) {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(addrs...),
		kgo.TransactionalID(rawTransactionalID),
		kgo.ConsumerGroup(rawGroup),
		kgo.ConsumeTopics(inputTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
	)
	if err != nil {
		return nil, txns, fmt.Errorf("raw: session: %w", err)
	}
	defer func() {
		if err != nil {
			sess.Close()
		}
	}()

	var (
		counts    = make(map[string]int64, keys) // as of the last commit
		txnCounts = make(map[string]int64, keys) // changed by the open transaction
		committed int                            // records counted by committed transactions
		inTxn     int                            // records counted by the open transaction
		txnStart  time.Time
		txnNumber = 1
	)
	if err := sess.Begin(); err != nil {
		return nil, txns, fmt.Errorf("raw: begin: %w", err)
	}
	produced := kgo.AbortingFirstErrPromise(sess.Client())
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if inTxn > 0 {
			// Return in time to end the transaction.
			pollCtx, cancel = context.WithDeadline(ctx, txnStart.Add(commitInterval))
		}
		fetches := sess.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, txns, fmt.Errorf("raw: committed %d of %d records: %w", committed, n, err)
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil && !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = fmt.Errorf("raw: fetch %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return nil, txns, fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if inTxn == 0 {
				txnStart = time.Now()
			}
			inTxn++
			c, ok := txnCounts[string(r.Key)]
			if !ok {
				c = counts[string(r.Key)]
			}
			c++
			txnCounts[string(r.Key)] = c
			sess.Produce(ctx, &kgo.Record{Topic: rawOutput, Key: r.Key, Value: strconv.AppendInt(nil, c, 10)}, produced.Promise())
		})
		if inTxn == 0 || (committed+inTxn < n && time.Since(txnStart) < commitInterval) {
			continue
		}
		// Err waits for every record of the transaction: End flushes
		// anyway, and commits only if all of them were written.
		produceErr := produced.Err()
		try := kgo.TransactionEndTry(produceErr == nil)
		if abort != nil && abort(txnNumber) {
			try = kgo.TryAbort
		}
		ok, err := sess.End(ctx, try)
		if err != nil {
			return nil, txns, fmt.Errorf("raw: end transaction: %w", err)
		}
		if produceErr != nil {
			return nil, txns, fmt.Errorf("raw: produce (transaction aborted): %w", produceErr)
		}
		if ok {
			txns.commits++
			for k, c := range txnCounts {
				counts[k] = c
			}
			committed += inTxn
		} else {
			// The session rewound to the committed offsets; the next
			// polls return the aborted records again.
			txns.aborts++
		}
		clear(txnCounts)
		inTxn = 0
		txnNumber++
		if committed >= n {
			if committed > n {
				return nil, txns, fmt.Errorf("raw: committed %d records, more than the %d written", committed, n)
			}
			return sess.Close, txns, nil
		}
		if err := sess.Begin(); err != nil {
			return nil, txns, fmt.Errorf("raw: begin: %w", err)
		}
		produced = kgo.AbortingFirstErrPromise(sess.Client())
	}
}

// sluiceCountExactlyOnce is the sluice side of
// BenchmarkCountGroupExactlyOnce: the processor of sluiceCount, exactly once
// and with the default commit interval. It returns once the group has
// committed the offsets of all n input records, which it does only in the
// transaction that also commits their table changes and outputs, with the
// processor and a function that stops it.
func sluiceCountExactlyOnce(ctx context.Context, addrs []string, stateDir string, n int) (*sluice.Processor[int64], func() error, error) {
	p, err := sluice.NewProcessor(countGroup(),
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.Guarantee(sluice.ExactlyOnce),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("sluice: %w", err)
	}
	run := start(p.Run)
	if err := waitCommitted(ctx, addrs, sluiceGroup, inputTopic, int64(n), run); err != nil {
		if serr := run.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, nil, fmt.Errorf("sluice: %w", err)
	}
	return p, run.stop, nil
}

// countSidesExactlyOnce returns the two sides of
// BenchmarkCountGroupExactlyOnce by name. Each runs on a broker of its own,
// filled with the same input, and logs the transactions it ended when
// stopped.
func countSidesExactlyOnce(tb testing.TB) map[string]countSide {
	return map[string]countSide{
		"raw": func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
			stop, txns, err := rawCountExactlyOnce(ctx, br.Addrs(), n, nil)
			if err != nil {
				return nil, err
			}
			return func() {
				stop()
				tb.Logf("raw: %d transactions committed, %d aborted", txns.commits, txns.aborts)
			}, nil
		},
		"sluice": func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
			p, stop, err := sluiceCountExactlyOnce(ctx, br.Addrs(), tb.TempDir(), n)
			if err != nil {
				return nil, err
			}
			return func() {
				began := time.Now()
				if err := stop(); err != nil {
					tb.Errorf("sluice: stop: %v", err)
				}
				s := p.Stats()
				tb.Logf("sluice: Stats() reports %d transactions committed, %d aborted; stopping took %v",
					s.Commits, s.Aborts, time.Since(began).Round(time.Millisecond))
			}, nil
		},
	}
}

// BenchmarkCountGroupExactlyOnce is BenchmarkCountGroup exactly once: the
// raw side is a kgo.GroupTransactSession and the sluice side a processor
// with Guarantee(ExactlyOnce). See the package documentation.
func BenchmarkCountGroupExactlyOnce(b *testing.B) {
	benchmarkCount(b, countSidesExactlyOnce, func(b *testing.B, br *broker.Broker, name string, n int) {
		// The output's end offset counts aborted records and commit
		// markers too; count what a reader of committed records sees.
		if got := countCommitted(b, br, outputOf(name)); got != int64(n) {
			b.Fatalf("%s holds %d committed records, want %d", outputOf(name), got, n)
		}
	})
}

// endKey is the key of the record readCommitted appends to every partition
// of a topic to know where it ends.
const endKey = "\x00end"

// readCommitted calls fn with every committed record of topic, in offset
// order within each partition, as a consumer reading committed records sees
// them, and returns how many there were. A topic written in transactions
// holds aborted records and commit markers too, so its end offset does not
// tell where its last committed record is: readCommitted first appends one
// record keyed endKey to every partition, outside any transaction, and
// reads each partition until that record, which it does not pass to fn. So
// it fails if a transaction of topic is still open.
func readCommitted(tb testing.TB, br *broker.Broker, topic string, fn func(*kgo.Record)) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wr := newClient(tb, br, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(partitions) {
		r := &kgo.Record{Topic: topic, Partition: p, Key: []byte(endKey)}
		if err := wr.ProduceSync(ctx, r).FirstErr(); err != nil {
			wr.Close()
			tb.Fatalf("produce to %s/%d: %v", topic, p, err)
		}
	}
	wr.Close()
	from := make(map[int32]kgo.Offset)
	for p := range int32(partitions) {
		from[p] = kgo.NewOffset().AtStart()
	}
	rd := newClient(tb, br,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	defer rd.Close()
	var read int64
	for len(from) > 0 {
		fetches := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			tb.Fatalf("read committed records of %s: %d partitions not read to their end: %v", topic, len(from), err)
		}
		fetches.EachError(func(_ string, p int32, err error) { tb.Fatalf("read %s/%d: %v", topic, p, err) })
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if _, reading := from[fp.Partition]; !reading {
					return
				}
				if string(r.Key) == endKey {
					delete(from, fp.Partition)
					continue
				}
				read++
				if fn != nil {
					fn(r)
				}
			}
		})
	}
	return read
}

// countCommitted returns how many committed records topic holds; see
// readCommitted.
func countCommitted(tb testing.TB, br *broker.Broker, topic string) int64 {
	tb.Helper()
	return readCommitted(tb, br, topic, nil)
}
