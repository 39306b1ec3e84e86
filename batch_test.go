package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

// seenBatch is what a test handler saw of one batch.
type seenBatch struct {
	partition int32
	offsets   map[string][]int64 // per topic
	size      int
}

// batchRecorder keeps every batch a handler saw.
type batchRecorder struct {
	mu      sync.Mutex
	batches []seenBatch
}

func (r *batchRecorder) record(ctx sluice.BatchContext, recs []sluice.Record[string, string]) {
	b := seenBatch{partition: ctx.Partition(), offsets: make(map[string][]int64), size: len(recs)}
	for _, rec := range recs {
		b.offsets[rec.Topic] = append(b.offsets[rec.Topic], rec.Offset)
	}
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
}

func (r *batchRecorder) snapshot() []seenBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// records counts the records of all batches seen.
func (r *batchRecorder) records() int {
	n := 0
	for _, b := range r.snapshot() {
		n += b.size
	}
	return n
}

func runBatchProcessor[K, V any](t *testing.T, bg *sluice.BatchGroup[K, V], opts ...sluice.ProcessorOpt) (*sluice.BatchProcessor[K, V], *running) {
	t.Helper()
	p, err := sluice.NewBatchProcessor(bg, opts...)
	if err != nil {
		t.Fatalf("new batch processor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = p.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return p, r
}

// emitTo writes n records with values "0", "1", ... to one partition.
func emitTo(t *testing.T, b *broker.Broker, parts int32, topic string, partition int32, n int) {
	t.Helper()
	em, err := sluice.NewEmitter(topic, codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := range n {
		if err := em.EmitToPartition(context.Background(), partition, "k", strconv.Itoa(i)); err != nil {
			t.Fatalf("emit: %v", err)
		}
	}
}

func TestBatchProcessorClosesBatchesBySizeAndByTimePerPartition(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	emitTo(t, b, parts, "batch-in", 0, 25)
	emitTo(t, b, parts, "batch-in", 1, 3)

	var rec batchRecorder
	bg := sluice.DefineBatchGroup[string, string]("batcher")
	sluice.BatchInput(bg, "batch-in", codec.String(), codec.String())
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], _ sluice.Sender) error {
		rec.record(ctx, recs)
		return nil
	})
	p, _ := runBatchProcessor(t, bg, append(processorOpts(b, parts, t.TempDir()),
		sluice.BatchSize(10), sluice.BatchWait(time.Second))...)
	waitFor(t, 30*time.Second, func() error {
		if n := rec.records(); n != 28 {
			return fmt.Errorf("%d records handled, want 28", n)
		}
		return nil
	})

	sizes := map[int32][]int{}
	var offsets [parts][]int64
	for _, b := range rec.snapshot() {
		sizes[b.partition] = append(sizes[b.partition], b.size)
		offsets[b.partition] = append(offsets[b.partition], b.offsets["batch-in"]...)
	}
	// Partition 0 fills two batches and closes the third on time;
	// partition 1 never fills one.
	if got := fmt.Sprint(sizes); got != "map[0:[10 10 5] 1:[3]]" {
		t.Fatalf("batch sizes per partition: %s, want map[0:[10 10 5] 1:[3]]", got)
	}
	for part, offs := range offsets {
		for i, off := range offs {
			if off != int64(i) {
				t.Fatalf("partition %d: records in order %v, want 0, 1, 2, ...", part, offs)
			}
		}
	}
	st := p.Stats()
	if st.Batches != 4 || st.Records != 28 || st.Sizes.Count != 4 || st.Latency.Count != 4 {
		t.Fatalf("stats: %d batches of %d records, %d sizes, %d latencies; want 4, 28, 4, 4",
			st.Batches, st.Records, st.Sizes.Count, st.Latency.Count)
	}
	if len(st.Partitions) != 2 || st.Partitions[0].Batches != 3 || st.Partitions[1].Records != 3 ||
		st.Partitions[0].Behind != 0 {
		t.Fatalf("partition stats: %+v", st.Partitions)
	}
}

func TestBatchProcessorJoinsInputsPartitionWise(t *testing.T) {
	b := startBroker(t)
	const parts = 3
	for p := range int32(parts) {
		emitTo(t, b, parts, "orders", p, 4)
		emitTo(t, b, parts, "payments", p, 2)
	}
	var rec batchRecorder
	bg := sluice.DefineBatchGroup[string, string]("joiner")
	sluice.BatchInput(bg, "orders", codec.String(), codec.String())
	sluice.BatchInput(bg, "payments", codec.String(), codec.String())
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], _ sluice.Sender) error {
		for _, r := range recs {
			if r.Partition != ctx.Partition() {
				return fmt.Errorf("record of partition %d in a batch of partition %d", r.Partition, ctx.Partition())
			}
		}
		rec.record(ctx, recs)
		return nil
	})
	runBatchProcessor(t, bg, append(processorOpts(b, parts, t.TempDir()), sluice.BatchWait(300*time.Millisecond))...)
	waitFor(t, 30*time.Second, func() error {
		if n := rec.records(); n != parts*6 {
			return fmt.Errorf("%d records handled, want %d", n, parts*6)
		}
		return nil
	})
	got := map[int32]map[string][]int64{}
	for _, b := range rec.snapshot() {
		if got[b.partition] == nil {
			got[b.partition] = map[string][]int64{}
		}
		for topic, offs := range b.offsets {
			got[b.partition][topic] = append(got[b.partition][topic], offs...)
		}
	}
	for p := range int32(parts) {
		if s := fmt.Sprint(got[p]); s != "map[orders:[0 1 2 3] payments:[0 1]]" {
			t.Fatalf("partition %d saw %s", p, s)
		}
	}
}

func TestBatchProcessorRejectsInputsNotCopartitioned(t *testing.T) {
	b := startBroker(t)
	emitTo(t, b, 2, "left", 0, 1)
	emitTo(t, b, 3, "right", 0, 1)
	bg := sluice.DefineBatchGroup[string, string]("uneven")
	sluice.BatchInput(bg, "left", codec.String(), codec.String())
	sluice.BatchInput(bg, "right", codec.String(), codec.String())
	sluice.HandleBatches(bg, func(sluice.BatchContext, []sluice.Record[string, string], sluice.Sender) error { return nil })
	p, err := sluice.NewBatchProcessor(bg, processorOpts(b, 2, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cerr *sluice.CopartitionError
	if err := p.Run(ctx); !errors.As(err, &cerr) {
		t.Fatalf("run: %v, want a CopartitionError", err)
	}
}

func TestBatchGroupDefinitionErrors(t *testing.T) {
	bg := sluice.DefineBatchGroup[string, string]("bad")
	sluice.BatchInput(bg, "in", codec.String(), codec.String())
	sluice.BatchInput(bg, "in", codec.String(), codec.String())
	sluice.BatchOutput(bg, "", codec.String())
	sluice.BatchTable(bg, codec.Int64())
	sluice.BatchTable(bg, codec.Int64())
	_, err := sluice.NewBatchProcessor(bg)
	if err == nil {
		t.Fatal("no error for a bad definition")
	}
	for _, want := range []string{"input in: topic is already the group's input", "output: topic name is empty",
		"table: the group already has one", "no handler"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	g := defineCounter("plain", "in")
	if _, err := sluice.NewProcessor(g, sluice.BatchSize(10)); err == nil {
		t.Error("BatchSize accepted by a record-at-a-time processor")
	}
}

// TestBatchProcessorFailStopsWithoutCommittingTheBatch fails a batch under
// the Fail policy and checks that the processor stops with an error naming
// the batch, and that a new processor gets the failed batch's records again
// while the batch before it stays committed.
func TestBatchProcessorFailStopsWithoutCommittingTheBatch(t *testing.T) {
	b := startBroker(t)
	emitTo(t, b, 1, "fragile", 0, 12)
	opts := append(processorOpts(b, 1, t.TempDir()), sluice.BatchSize(5), sluice.BatchWait(200*time.Millisecond))

	define := func(poison bool, rec *batchRecorder) *sluice.BatchGroup[string, string] {
		bg := sluice.DefineBatchGroup[string, string]("fragile-group")
		sluice.BatchInput(bg, "fragile", codec.String(), codec.String())
		sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], _ sluice.Sender) error {
			rec.record(ctx, recs)
			for _, r := range recs {
				if poison && r.Value == "7" {
					return errors.New("cannot handle 7")
				}
			}
			return nil
		})
		return bg
	}
	var first batchRecorder
	_, r := runBatchProcessor(t, define(true, &first), opts...)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("processor did not stop after the failed batch")
	}
	var berr *sluice.BatchError
	if !errors.As(r.err, &berr) {
		t.Fatalf("run: %v, want a BatchError", r.err)
	}
	if want := "group fragile-group: batch fragile/0@5-9: cannot handle 7"; r.err.Error() != want {
		t.Fatalf("error %q, want %q", r.err, want)
	}

	var second batchRecorder
	_, r2 := runBatchProcessor(t, define(false, &second), opts...)
	waitFor(t, 30*time.Second, func() error {
		if n := second.records(); n != 7 {
			return fmt.Errorf("%d records handled after the restart, want 7", n)
		}
		return nil
	})
	r2.stop(t)
	var offs []int64
	for _, b := range second.snapshot() {
		offs = append(offs, b.offsets["fragile"]...)
	}
	if got := fmt.Sprint(offs); got != "[5 6 7 8 9 10 11]" {
		t.Fatalf("after the failure the records %s were handled, want [5 6 7 8 9 10 11]", got)
	}
}
