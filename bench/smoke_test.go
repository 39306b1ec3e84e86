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
			br := startBroker(t)
			fillInput(t, br, smokeRecords)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stop, err := side(ctx, br, smokeRecords)
			if err != nil {
				t.Fatal(err)
			}
			stop()

			want := make(map[string]int64, keys)
			for i := range smokeRecords {
				want[string(inputKey(i))]++
			}
			last := make(map[string]int64, keys)
			readTopic(t, br, outputOf(name), func(r *kgo.Record) {
				n, err := strconv.ParseInt(string(r.Value), 10, 64)
				if err != nil {
					t.Fatalf("%s: value %q of key %s is not a count", outputOf(name), r.Value, r.Key)
				}
				if k := string(r.Key); n != last[k]+1 {
					t.Fatalf("%s: key %s: count %d follows %d", outputOf(name), k, n, last[k])
				}
				last[string(r.Key)] = n
			})
			if len(last) != len(want) {
				t.Fatalf("%s has counts of %d keys, want %d", outputOf(name), len(last), len(want))
			}
			for k, n := range want {
				if last[k] != n {
					t.Fatalf("%s: key %s ends at %d, want %d", outputOf(name), k, last[k], n)
				}
			}
			if name != "sluice" {
				return
			}
			table := make(map[string]string, keys)
			readTopic(t, br, sluiceGroup+"-table", func(r *kgo.Record) { table[string(r.Key)] = string(r.Value) })
			for k, n := range want {
				if got := table[k]; got != strconv.FormatInt(n, 10) {
					t.Fatalf("table: key %s is %q, want %d", k, got, n)
				}
			}
		})
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
