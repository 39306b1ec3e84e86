package sluice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

// fnv32a is Sarama's default hash, as franz-go's SaramaCompatHasher doc
// spells it.
func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// saramaPartitioner is franz-go's match for Sarama's (and goka's) default
// partitioner.
func saramaPartitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))
}

// produceRaw writes records with a plain franz-go client and the given
// partitioner, and returns them with their partitions and offsets set.
func produceRaw(t *testing.T, b *broker.Broker, part kgo.Partitioner, records ...*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(part))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return records
}

func withHasher[O any](opts []O, o O) []O { return append(append([]O(nil), opts...), o) }

// TestViewAndLookupFindRowsWhereTheirProducersHasherPlacedThem writes a table
// as other producers do, with Sarama's partitioner and with explicit
// partitions chosen by librdkafka's crc32, and reads it back with the
// matching Hasher through a view and through a lookup.
func TestViewAndLookupFindRowsWhereTheirProducersHasherPlacedThem(t *testing.T) {
	b := startBroker(t)
	const parts = 6
	probe := newTopicProbe(t, b)
	cases := []struct {
		name   string
		hasher sluice.Hasher
		part   kgo.Partitioner
		place  func(key string) int32 // -1: the partitioner places it
	}{
		{"fnv1a", sluice.FNV1a, saramaPartitioner(), func(string) int32 { return -1 }},
		{"crc32", sluice.CRC32, kgo.ManualPartitioner(), func(key string) int32 {
			return int32(crc32.ChecksumIEEE([]byte(key)) % parts)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			table, orders := "prices-"+tc.name, "orders-"+tc.name
			probe.create(table, parts, true)
			probe.create(orders, parts, false)
			want := make(map[string]string)
			var rows, ins []*kgo.Record
			for i := range 40 {
				key := fmt.Sprintf("sku-%d", i)
				want[key] = strconv.Itoa(100 + i)
				rows = append(rows, &kgo.Record{Topic: table, Key: []byte(key), Value: []byte(want[key]), Partition: tc.place(key)})
				ins = append(ins, &kgo.Record{Topic: orders, Key: []byte(key), Value: []byte("order"), Partition: tc.place(key)})
			}
			produceRaw(t, b, tc.part, rows...)

			// With Kafka's murmur2 the view looks for some rows in the
			// wrong partition: the case is one the Hasher decides.
			murmur := startView(t, table, codec.String(), viewOpts(b, parts)...)
			var missed int
			for key := range want {
				if _, err := murmur.Get(key); errors.Is(err, sluice.ErrNotFound) {
					missed++
				}
			}
			if missed == 0 {
				t.Fatalf("a murmur2 view finds every row placed by %s: the keys do not tell the hashers apart", tc.name)
			}

			v := startView(t, table, codec.String(), withHasher(viewOpts(b, parts), sluice.ViewOpt(sluice.Partitioning(tc.hasher)))...)
			for key, val := range want {
				if got, err := v.Get(key); err != nil || got != val {
					t.Errorf("view with %v: get %s = %q, %v; want %q", tc.hasher, key, got, err, val)
				}
			}

			g := sluice.DefineGroup[string]("pricer-" + tc.name)
			sluice.Persist(g, codec.String())
			prices := sluice.Lookup(g, table, codec.String())
			sluice.Input(g, orders, codec.String(), func(ctx *sluice.Context[string], _ string) error {
				price, ok, err := prices.Get(ctx, ctx.Key())
				if err != nil {
					return err
				}
				if !ok {
					price = "missing"
				}
				ctx.SetValue(price)
				return nil
			})
			p, err := sluice.NewProcessor(g, withHasher(processorOpts(b, parts, t.TempDir()), sluice.ProcessorOpt(sluice.Partitioning(tc.hasher)))...)
			if err != nil {
				t.Fatal(err)
			}
			runInBackground(t, p.Run)
			produceRaw(t, b, tc.part, ins...)
			priced := startView(t, g.TableTopic(), codec.String(), withHasher(viewOpts(b, parts), sluice.ViewOpt(sluice.Partitioning(tc.hasher)))...)
			waitFor(t, 30*time.Second, func() error {
				for key, val := range want {
					if got, err := priced.Get(key); err != nil || got != val {
						return fmt.Errorf("lookup of %s gave %q (%v), want %q", key, got, err, val)
					}
				}
				return nil
			})
			if s := p.Stats(); s.Misplaced != 0 {
				t.Errorf("%d input records reported misplaced, all were placed by %v", s.Misplaced, tc.hasher)
			}
		})
	}
}

// lockedBuffer is a log destination shared by the processor's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the JSON log lines written so far.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		m := make(map[string]any)
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// produceMisplaced writes 12 keyed records to topic, every third one to a
// partition murmur2 does not place its key on, and records with a nil and
// an empty key, which are not placed by key. It returns the misplaced ones.
func produceMisplaced(t *testing.T, b *broker.Broker, topic string, parts int32) (misplaced []*kgo.Record, total int) {
	t.Helper()
	var records []*kgo.Record
	for i := range 12 {
		key := fmt.Sprintf("user-%d", i)
		p := sluice.Murmur2.Partition(key, parts)
		if i%3 == 0 {
			p = (p + 1) % parts
		}
		records = append(records, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte("click"), Partition: p})
	}
	empty := (sluice.Murmur2.Partition("", parts) + 1) % parts
	records = append(records,
		&kgo.Record{Topic: topic, Key: nil, Value: []byte("click"), Partition: empty},
		&kgo.Record{Topic: topic, Key: []byte{}, Value: []byte("click"), Partition: empty})
	produceRaw(t, b, kgo.ManualPartitioner(), records...)
	for i := 0; i < 12; i += 3 {
		misplaced = append(misplaced, records[i])
	}
	return misplaced, len(records)
}

func TestProcessorCountsAndLogsInputRecordsNotOnTheirKeysPartition(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	newTopicProbe(t, b).create("clicks", parts, false)
	misplaced, total := produceMisplaced(t, b, "clicks", parts)

	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	opts := append(processorOpts(b, parts, t.TempDir()),
		sluice.Logger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		sluice.Metrics(reg))
	p, err := sluice.NewProcessor(defineCounter("clicker", "clicks"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, p.Run)
	runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == int64(total) })
	if s := p.Stats(); s.Misplaced != int64(len(misplaced)) {
		t.Fatalf("Stats.Misplaced = %d, want %d", s.Misplaced, len(misplaced))
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]*dto.MetricFamily)
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got, _ := sumOf(byName, "sluice_records_misplaced_total", map[string]string{"group": "clicker", "topic": "clicks"}); got != float64(len(misplaced)) {
		t.Errorf("sluice_records_misplaced_total = %v, want %d", got, len(misplaced))
	}

	logged := make(map[string]map[string]any) // topic/partition@offset → line
	for _, l := range logs.lines(t) {
		if l["key"] == nil || l["want"] == nil {
			continue
		}
		logged[fmt.Sprintf("%v/%v@%v", l["topic"], l["partition"], l["offset"])] = l
	}
	for _, r := range misplaced {
		at := fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
		l, ok := logged[at]
		if !ok {
			t.Errorf("misplaced record %s (key %s) not logged; logged: %v", at, r.Key, logged)
			continue
		}
		want := sluice.Murmur2.Partition(string(r.Key), parts)
		if l["key"] != string(r.Key) || l["want"] != float64(want) || l["hasher"] != "murmur2" {
			t.Errorf("log of %s: %v, want key %s, want %d, hasher murmur2", at, l, r.Key, want)
		}
	}
	if len(logged) != len(misplaced) {
		t.Errorf("%d records logged as misplaced, want %d: %v", len(logged), len(misplaced), logged)
	}
	var warned int
	for _, l := range logged {
		if l["level"] == "WARN" {
			warned++
		}
	}
	if warned == 0 {
		t.Error("no misplaced record was logged at WARN")
	}
}

func TestStrictPartitioningDeadLettersInputRecordsNotOnTheirKeysPartition(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	newTopicProbe(t, b).create("strict-clicks", parts, false)
	misplaced, total := produceMisplaced(t, b, "strict-clicks", parts)

	opts := append(processorOpts(b, parts, t.TempDir()), sluice.StrictPartitioning(), sluice.OnError(sluice.DeadLetter("strict-misplaced")))
	p, err := sluice.NewProcessor(defineCounter("strict", "strict-clicks"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, p.Run)
	runUntil(t, p, func(s sluice.Stats) bool {
		return s.Consumed == int64(total) && s.DeadLettered == int64(len(misplaced))
	})
	if s := p.Stats(); s.Misplaced != int64(len(misplaced)) {
		t.Fatalf("Stats.Misplaced = %d, want %d", s.Misplaced, len(misplaced))
	}

	letters := readAll(t, b.Addrs(), "strict-misplaced", len(misplaced))
	at := make(map[string]string)
	for _, r := range misplaced {
		at[string(r.Key)] = fmt.Sprintf("%d@%d", r.Partition, r.Offset)
	}
	for _, r := range letters {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[sluice.HeaderErrorKind] != "misplaced" {
			t.Errorf("dead letter %s: kind %q, want misplaced (error %q)", r.Key, h[sluice.HeaderErrorKind], h[sluice.HeaderError])
		}
		if got := h[sluice.HeaderSourcePartition] + "@" + h[sluice.HeaderSourceOffset]; got != at[string(r.Key)] {
			t.Errorf("dead letter %s from %s, want %s", r.Key, got, at[string(r.Key)])
		}
		delete(at, string(r.Key))
	}
	if len(at) != 0 {
		t.Errorf("misplaced records without a dead letter: %v", at)
	}

	// The rows are those of the records on their key's partition and of the
	// unkeyed ones.
	v := startView(t, "strict-table", codec.JSON[counter](), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		rows := make(map[string]int64)
		if err := v.Iterate("", "", func(k string, c counter) bool { rows[k] += c.Count; return true }); err != nil {
			return err
		}
		if len(rows) != 9 || rows[""] != 2 {
			return fmt.Errorf("rows %v, want 8 placed users and 2 unkeyed clicks under \"\"", rows)
		}
		for _, r := range misplaced {
			if _, ok := rows[string(r.Key)]; ok {
				return fmt.Errorf("misplaced %s has a row", r.Key)
			}
		}
		return nil
	})
}

// TestOutputsLoopbacksAndEmittersLandWhereTheHasherPlacesKeys compares what
// sluice writes with franz-go's own partitioners for the same producers:
// Sarama-compatible FNV-1a, and crc32 as librdkafka's consistent partitioner.
func TestOutputsLoopbacksAndEmittersLandWhereTheHasherPlacesKeys(t *testing.T) {
	b := startBroker(t)
	const parts = 5
	cases := []struct {
		hasher sluice.Hasher
		kgo    kgo.Partitioner
	}{
		{sluice.FNV1a, kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))},
		{sluice.CRC32, kgo.StickyKeyPartitioner(kgo.SaramaHasher(crc32.ChecksumIEEE))},
	}
	for _, tc := range cases {
		t.Run(tc.hasher.String(), func(t *testing.T) {
			placed := sluice.Partitioning(tc.hasher)
			visits := "visits-" + tc.hasher.String()
			em, err := sluice.NewEmitter(visits, codec.String(), emitterOpts(b, parts, placed)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = em.Close() })

			g := sluice.DefineGroup[int64]("router-" + tc.hasher.String())
			sluice.Persist(g, codec.Int64())
			out := sluice.Output(g, visits+"-out", codec.String())
			loop := sluice.Loop(g, codec.String(), func(ctx *sluice.Context[int64], _ string) error {
				n, _ := ctx.Value()
				ctx.SetValue(n + 1)
				return nil
			})
			sluice.Input(g, visits, codec.String(), func(ctx *sluice.Context[int64], _ string) error {
				if err := out.Emit(ctx, "out-"+ctx.Key(), "x"); err != nil {
					return err
				}
				return loop.Loopback(ctx, "loop-"+ctx.Key(), "x")
			})
			p, err := sluice.NewProcessor(g, withHasher(processorOpts(b, parts, t.TempDir()), sluice.ProcessorOpt(placed))...)
			if err != nil {
				t.Fatal(err)
			}
			runInBackground(t, p.Run)
			const n = 40
			for i := range n {
				if err := em.Emit(context.Background(), fmt.Sprintf("visitor-%d", i), "x"); err != nil {
					t.Fatal(err)
				}
			}
			runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == 2*n })
			if s := p.Stats(); s.Misplaced != 0 {
				t.Errorf("%d records misplaced: the emitter and the loopback must write where the processor looks", s.Misplaced)
			}

			kgoPartition := tc.kgo.ForTopic("")
			probe := newTopicProbe(t, b)
			for _, topic := range []string{visits, visits + "-out", g.LoopTopic()} {
				records := probe.readAll(topic)
				if len(records) != n {
					t.Fatalf("%s has %d records, want %d", topic, len(records), n)
				}
				used := make(map[int32]bool)
				for _, r := range records {
					used[r.Partition] = true
					if want := int32(kgoPartition.Partition(&kgo.Record{Key: r.Key}, parts)); r.Partition != want {
						t.Errorf("%s: key %s on partition %d, franz-go's partitioner says %d", topic, r.Key, r.Partition, want)
					}
				}
				if len(used) < 2 {
					t.Errorf("%s: every key on partitions %v; the comparison proves little", topic, used)
				}
			}
		})
	}
}

// TestViewWithCRC32FindsRowsKcatWroteWithTheConsistentPartitioner has
// librdkafka itself place the rows, with the partitioner that its default,
// consistent_random, uses for keyed records.
func TestViewWithCRC32FindsRowsKcatWroteWithTheConsistentPartitioner(t *testing.T) {
	requireKcat(t)
	b := startBroker(t)
	const parts = 6
	newTopicProbe(t, b).create("rates", parts, true)
	want := make(map[string]string)
	var lines []string
	for i := range 30 {
		key, val := fmt.Sprintf("pair-%d", i), strconv.Itoa(1000+i)
		want[key] = val
		lines = append(lines, key+":"+val)
	}
	runKcat(t, b, strings.Join(lines, "\n")+"\n", "-P", "-t", "rates", "-K:", "-X", "partitioner=consistent")

	for _, r := range kcatConsume(t, b, "rates") {
		if p := sluice.CRC32.Partition(r.key, parts); p != r.partition {
			t.Errorf("librdkafka put %s on partition %d, CRC32 says %d", r.key, r.partition, p)
		}
	}
	murmur := startView(t, "rates", codec.String(), viewOpts(b, parts)...)
	var missed int
	for key := range want {
		if _, err := murmur.Get(key); errors.Is(err, sluice.ErrNotFound) {
			missed++
		}
	}
	if missed == 0 {
		t.Fatal("a murmur2 view finds every row kcat placed with crc32: the keys do not tell the hashers apart")
	}
	v := startView(t, "rates", codec.String(), withHasher(viewOpts(b, parts), sluice.ViewOpt(sluice.Partitioning(sluice.CRC32)))...)
	for key, val := range want {
		if got, err := v.Get(key); err != nil || got != val {
			t.Errorf("view with crc32: get %s = %q, %v; want %q", key, got, err, val)
		}
	}
}
