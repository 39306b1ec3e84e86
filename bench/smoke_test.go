package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
)

// smokeRecords is the size of the harness tests: large enough that every
// key repeats and every partition is used, small enough to run in seconds.
const smokeRecords = 20_000

// TestCountGroupSidesEmitEveryCountInOrder runs both sides of
// BenchmarkCountGroup at a small size and checks that each emitted, for
// every key, the counts 1, 2, ... in order and nothing else, and that the
// sluice table ends with each key's total.
func TestCountGroupSidesEmitEveryCountInOrder(t *testing.T) {
	for name, side := range countSides(t) {
		t.Run(name, func(t *testing.T) {
			br := runCountSide(t, side)
			read := func(topic string, fn func(*kgo.Record)) { readTopic(t, br, topic, fn) }
			checkCounts(t, read, outputOf(name))
			if name == "sluice" {
				checkTable(t, read, sluiceGroup+"-table")
			}
		})
	}
}

// TestCountGroupExactlyOnceSidesEmitEveryCountInOrder runs both sides of
// BenchmarkCountGroupExactlyOnce at a small size, and the raw side once
// more with every other transaction aborted, and checks what a reader of
// committed records sees: for every key, the counts 1, 2, ... in order and
// nothing else, and a sluice table that ends with each key's total.
func TestCountGroupExactlyOnceSidesEmitEveryCountInOrder(t *testing.T) {
	sides := countSidesExactlyOnce(t)
	sides["raw-aborting"] = func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
		stop, txns, err := rawCountExactlyOnce(ctx, br.Addrs(), n, func(txn int) bool { return txn%2 == 1 })
		if err != nil {
			return nil, err
		}
		if txns.aborts == 0 {
			t.Errorf("raw-aborting: %d transactions committed and none aborted", txns.commits)
		}
		return stop, nil
	}
	for name, side := range sides {
		t.Run(name, func(t *testing.T) {
			br := runCountSide(t, side)
			read := func(topic string, fn func(*kgo.Record)) { readCommitted(t, br, topic, fn) }
			output := sluiceOutput
			if name != "sluice" {
				output = rawOutput
			}
			checkCounts(t, read, output)
			if name == "sluice" {
				checkTable(t, read, sluiceGroup+"-table")
			}
		})
	}
}

// runCountSide fills a broker of its own with smokeRecords input records,
// runs side over them, stops it and returns the broker.
func runCountSide(t *testing.T, side countSide) *broker.Broker {
	t.Helper()
	br := startBroker(t)
	fillInput(t, br, smokeRecords)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop, err := side(ctx, br, smokeRecords)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	return br
}

// smokeTotals returns every key's count of the smokeRecords input records.
func smokeTotals() map[string]int64 {
	want := make(map[string]int64, keys)
	for i := range smokeRecords {
		want[string(inputKey(i))]++
	}
	return want
}

// checkCounts checks that output, read with read, holds for every key the
// counts 1, 2, ... up to its total in order, and nothing else.
func checkCounts(t *testing.T, read func(topic string, fn func(*kgo.Record)), output string) {
	t.Helper()
	want := smokeTotals()
	last := make(map[string]int64, keys)
	read(output, func(r *kgo.Record) {
		n, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			t.Fatalf("%s: value %q of key %s is not a count", output, r.Value, r.Key)
		}
		if k := string(r.Key); n != last[k]+1 {
			t.Fatalf("%s: key %s: count %d follows %d", output, k, n, last[k])
		}
		last[string(r.Key)] = n
	})
	if len(last) != len(want) {
		t.Fatalf("%s has counts of %d keys, want %d", output, len(last), len(want))
	}
	for k, n := range want {
		if last[k] != n {
			t.Fatalf("%s: key %s ends at %d, want %d", output, k, last[k], n)
		}
	}
}

// checkTable checks that the last row of every key in table, read with
// read, is its total count.
func checkTable(t *testing.T, read func(topic string, fn func(*kgo.Record)), table string) {
	t.Helper()
	rows := make(map[string]string, keys)
	read(table, func(r *kgo.Record) { rows[string(r.Key)] = string(r.Value) })
	want := smokeTotals()
	if len(rows) != len(want) {
		t.Fatalf("%s has rows of %d keys, want %d", table, len(rows), len(want))
	}
	for k, n := range want {
		if got := rows[k]; got != strconv.FormatInt(n, 10) {
			t.Fatalf("%s: key %s is %q, want %d", table, k, got, n)
		}
	}
}

// TestRestoreSidesReadTheWholeTable runs every side of BenchmarkRestore once
// at a small size; each checks its own outcome.
func TestRestoreSidesReadTheWholeTable(t *testing.T) {
	br := startBroker(t)
	fillTable(t, br, smokeRecords)
	for _, side := range restoreSides {
		t.Run(side.name, func(t *testing.T) {
			if side.setup != nil {
				side.setup(t, br)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stop, err := side.run(ctx, t, br, smokeRecords)
			if err != nil {
				t.Fatal(err)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRestartSidesHandleNewRecords runs the clean, crash-copy and fresh
// sides of BenchmarkRestartWithTable once at a small size and checks how
// much of the table each restored. The sigkill side waits out the group's
// session timeout (45s) and is left to the benchmark.
func TestRestartSidesHandleNewRecords(t *testing.T) {
	br := startBroker(t)
	fillTable(t, br, smokeRecords)
	built, crashed := t.TempDir(), t.TempDir()
	buildState(t, br, built, crashed)
	for _, side := range restartSides {
		if side.name == "sigkill" {
			continue
		}
		t.Run(side.name, func(t *testing.T) {
			dir := side.stateDir(t, br, built, crashed)
			produceOnePerPartition(t, br, restoreInput)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, stop, err := restartProcessor(ctx, br.Addrs(), dir, side.mode)
			if err != nil {
				t.Fatal(err)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			t.Logf("first record after %v, all after %v, %d rows restored", r.first, r.all, r.replayed)
			switch {
			case side.name == "clean" && r.replayed != 0:
				t.Errorf("restored %d rows after a clean stop, want 0", r.replayed)
			case side.name == "fresh" && r.replayed != smokeRecords:
				t.Errorf("restored %d rows into an empty state dir, want %d", r.replayed, smokeRecords)
			case r.replayed > smokeRecords:
				t.Errorf("restored %d rows of a table of %d", r.replayed, smokeRecords)
			}
		})
	}
}

// readTopic calls fn with every record of topic up to its current end, in
// offset order within each partition.
func readTopic(t *testing.T, br *broker.Broker, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, br)
	ends, _, err := endOffsets(ctx, kadm.NewClient(cl), topic)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	from := make(map[int32]kgo.Offset)
	for p, end := range ends {
		if end > 0 {
			from[p] = kgo.NewOffset().AtStart()
		}
	}
	rd := newClient(t, br, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))
	defer rd.Close()
	for len(from) > 0 {
		fetches := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		fetches.EachError(func(_ string, p int32, err error) { t.Fatalf("read %s/%d: %v", topic, p, err) })
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				fn(r)
			}
			if len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset+1 >= ends[fp.Partition] {
				delete(from, fp.Partition)
			}
		})
	}
}
