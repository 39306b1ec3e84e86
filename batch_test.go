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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// batchOpts are processorOpts followed by extra, for a batch processor.
func batchOpts(b *broker.Broker, partitions int32, stateDir string, extra ...sluice.BatchProcessorOpt) []sluice.BatchProcessorOpt {
	var opts []sluice.BatchProcessorOpt
	for _, o := range processorOpts(b, partitions, stateDir) {
		opts = append(opts, o)
	}
	return append(opts, extra...)
}

func runBatchProcessor[K, V any](t *testing.T, bg *sluice.BatchGroup[K, V], opts ...sluice.BatchProcessorOpt) (*sluice.BatchProcessor[K, V], *running) {
	t.Helper()
	p, err := sluice.NewBatchProcessor(bg, opts...)
	if err != nil {
		t.Fatalf("new batch processor: %v", err)
	}
	return p, runInBackground(t, p.Run)
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
	reg := prometheus.NewRegistry()
	p, _ := runBatchProcessor(t, bg, batchOpts(b, parts, t.TempDir(),
		sluice.BatchSize(10), sluice.BatchWait(time.Second), sluice.Metrics(reg))...)
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
	if st.Batches != 4 || st.Records != 28 {
		t.Fatalf("stats: %d batches of %d records; want 4, 28", st.Batches, st.Records)
	}
	if len(st.Partitions) != 2 || st.Partitions[0].Batches != 3 || st.Partitions[1].Records != 3 ||
		st.Partitions[0].Behind != 0 {
		t.Fatalf("partition stats: %+v", st.Partitions)
	}

	// The same figures as metrics.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "sluice_batch_size_records":
				got[f.GetName()] = fmt.Sprintf("%d batches, %g records", m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum())
			case "sluice_batch_duration_seconds":
				got[f.GetName()] = fmt.Sprintf("%d batches", m.GetHistogram().GetSampleCount())
			case "sluice_records_behind_high_watermark":
				got[f.GetName()] += fmt.Sprintf("[%s: %g]", m.GetLabel()[1].GetValue(), m.GetGauge().GetValue())
			}
		}
	}
	want := map[string]string{
		"sluice_batch_size_records":            "4 batches, 28 records",
		"sluice_batch_duration_seconds":        "4 batches",
		"sluice_records_behind_high_watermark": "[0: 0][1: 0]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics:\n got %v\nwant %v", got, want)
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
	runBatchProcessor(t, bg, batchOpts(b, parts, t.TempDir(), sluice.BatchWait(300*time.Millisecond))...)
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
	p, err := sluice.NewBatchProcessor(bg, batchOpts(b, 2, t.TempDir())...)
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
}

// TestBatchOptionsAreNotProcessorOptions guards what keeps
// sluice.NewProcessor(g, sluice.BatchSize(10)) from compiling: the batch
// options are BatchProcessorOpts and not ProcessorOpts.
func TestBatchOptionsAreNotProcessorOptions(t *testing.T) {
	for name, o := range map[string]sluice.BatchProcessorOpt{"BatchSize": sluice.BatchSize(10), "BatchWait": sluice.BatchWait(time.Second)} {
		if _, ok := o.(sluice.ProcessorOpt); ok {
			t.Errorf("%s is a ProcessorOpt: a record-at-a-time Processor would take it", name)
		}
	}
}

// TestBatchProcessorFailStopsWithoutCommittingTheBatch fails a batch under
// the Fail policy and checks that the processor stops with an error naming
// the batch, and that a new processor gets the failed batch's records again
// while the batch before it stays committed.
func TestBatchProcessorFailStopsWithoutCommittingTheBatch(t *testing.T) {
	b := startBroker(t)
	emitTo(t, b, 1, "fragile", 0, 12)
	opts := batchOpts(b, 1, t.TempDir(), sluice.BatchSize(5), sluice.BatchWait(time.Second))

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

// readToEnd reads every record of topic up to its end offsets as of the
// call.
func readToEnd(ctx context.Context, addrs []string, topic string) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var recs []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	return recs, nil
}

// TestBatchProcessorProducesOutputsBeforeCommittingOffsets watches the
// group's committed offsets while it runs: whenever an offset is committed,
// the outputs of every record below it must already be in the output topic.
func TestBatchProcessorProducesOutputsBeforeCommittingOffsets(t *testing.T) {
	b := startBroker(t)
	const parts, perPartition = 2, 100
	for p := range int32(parts) {
		emitTo(t, b, parts, "echo-in", p, perPartition)
	}
	bg := sluice.DefineBatchGroup[string, string]("echoer")
	sluice.BatchInput(bg, "echo-in", codec.String(), codec.String())
	out := sluice.BatchOutput(bg, "echo-out", codec.String())
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
		time.Sleep(20 * time.Millisecond) // so that commits happen while batches are handled
		for _, r := range recs {
			if err := out.Send(s, r.Key, fmt.Sprintf("%d:%d", r.Partition, r.Offset)); err != nil {
				return err
			}
		}
		return nil
	})
	runBatchProcessor(t, bg, batchOpts(b, parts, t.TempDir(),
		sluice.BatchSize(10), sluice.CommitInterval(100*time.Millisecond))...)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	checked := 0
	for {
		offs, err := adm.FetchOffsets(ctx, "echoer")
		if errors.Is(err, kerr.GroupIDNotFound) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		recs, err := readToEnd(ctx, b.Addrs(), "echo-out")
		if err != nil {
			t.Fatal(err)
		}
		produced := map[string]bool{}
		for _, r := range recs {
			produced[string(r.Value)] = true
		}
		done := 0
		offs.Each(func(o kadm.OffsetResponse) {
			for off := range o.At {
				if key := fmt.Sprintf("%d:%d", o.Partition, off); !produced[key] {
					t.Fatalf("offset %d of partition %d committed before the output of record %s was produced", o.At, o.Partition, key)
				}
			}
			if o.At > 0 {
				checked++
			}
			if o.At == perPartition {
				done++
			}
		})
		if done == parts {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if checked == 0 {
		t.Fatal("no committed offset was checked")
	}
}

// counterGroup counts records per key in its table and sends
// "<key>=<count before>" for each record; a record "fail" fails its batch.
func counterGroup(name, input string) *sluice.BatchGroup[string, string] {
	bg := sluice.DefineBatchGroup[string, string](name)
	sluice.BatchInput(bg, input, codec.String(), codec.String())
	out := sluice.BatchOutput(bg, name+"-out", codec.String())
	counts := sluice.BatchTable(bg, codec.Int64())
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
		st := counts.Store(ctx)
		for _, r := range recs {
			n, _, err := st.Get(ctx.Context(), r.Key)
			if err != nil {
				return err
			}
			if err := st.Put(ctx.Context(), r.Key, n+1); err != nil {
				return err
			}
			if err := out.Send(s, r.Key, fmt.Sprintf("%s=%d", r.Key, n)); err != nil {
				return err
			}
		}
		for _, r := range recs {
			if r.Value == "fail" {
				return errors.New("cannot handle fail")
			}
		}
		return nil
	})
	return bg
}

func emitKeyed(t *testing.T, b *broker.Broker, parts int32, topic string, kvs ...string) {
	t.Helper()
	em, err := sluice.NewEmitter(topic, codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := 0; i < len(kvs); i += 2 {
		if err := em.EmitToPartition(context.Background(), 0, kvs[i], kvs[i+1]); err != nil {
			t.Fatalf("emit: %v", err)
		}
	}
}

func values(recs []*kgo.Record) []string {
	vs := make([]string, len(recs))
	for i, r := range recs {
		vs[i] = string(r.Value)
	}
	return vs
}

// TestBatchProcessorDeadLettersEveryRecordOfAFailedBatch fails the second
// of three batches under DeadLetter: its records go to the dead-letter topic
// with the headers saying why, its outputs and table writes are dropped, and
// the batches around it count as if it never happened.
func TestBatchProcessorDeadLettersEveryRecordOfAFailedBatch(t *testing.T) {
	b := startBroker(t)
	emitKeyed(t, b, 1, "dl-in", "a", "x", "b", "x", "a", "x", "a", "fail", "a", "x", "b", "x")
	p, _ := runBatchProcessor(t, counterGroup("dl", "dl-in"), batchOpts(b, 1, t.TempDir(),
		sluice.BatchSize(2), sluice.BatchWait(time.Second), sluice.OnError(sluice.DeadLetter("dl-dead")))...)

	dead := readAll(t, b.Addrs(), "dl-dead", 2)
	for i, r := range dead {
		hs := map[string]string{}
		for _, h := range r.Headers {
			hs[h.Key] = string(h.Value)
		}
		if hs[sluice.HeaderErrorKind] != "handler" || hs[sluice.HeaderSourceOffset] != strconv.Itoa(2+i) ||
			!strings.Contains(hs[sluice.HeaderError], "batch dl-in/0@2-3: cannot handle fail") {
			t.Errorf("dead letter %d: key %s headers %v", i, r.Key, hs)
		}
	}
	outs := values(readAll(t, b.Addrs(), "dl-out", 4))
	if got := fmt.Sprint(outs); got != "[a=0 b=0 a=1 b=1]" {
		t.Fatalf("outputs %s, want [a=0 b=0 a=1 b=1]", got)
	}
	if st := p.Stats(); st.DeadLettered != 2 || st.FailedBatches != 1 {
		t.Fatalf("stats: %d dead-lettered, %d failed batches; want 2 and 1", st.DeadLettered, st.FailedBatches)
	}
}

// TestBatchTableRestoresAfterRestart counts with a batch table, stops, and
// goes on counting with a new processor whose local store is empty: the
// table is restored from its changelog.
func TestBatchTableRestoresAfterRestart(t *testing.T) {
	b := startBroker(t)
	opts := func(dir string) []sluice.BatchProcessorOpt {
		return batchOpts(b, 1, dir, sluice.BatchWait(100*time.Millisecond))
	}
	emitKeyed(t, b, 1, "restore-in", "a", "x", "b", "x", "a", "x")
	p, r := runBatchProcessor(t, counterGroup("restorer", "restore-in"), opts(t.TempDir())...)
	readAll(t, b.Addrs(), "restorer-out", 3)
	r.stop(t)
	if st := p.Stats(); st.Records != 3 {
		t.Fatalf("first processor handled %d records, want 3", st.Records)
	}

	emitKeyed(t, b, 1, "restore-in", "a", "x", "b", "x")
	p2, r2 := runBatchProcessor(t, counterGroup("restorer", "restore-in"), opts(t.TempDir())...)
	outs := values(readAll(t, b.Addrs(), "restorer-out", 5))
	r2.stop(t)
	if got := fmt.Sprint(outs); got != "[a=0 b=0 a=1 a=2 b=1]" {
		t.Fatalf("outputs %s, want [a=0 b=0 a=1 a=2 b=1]", got)
	}
	st := p2.Stats()
	if st.Records != 2 || len(st.Partitions) != 0 && st.Partitions[0].Batches == 0 {
		t.Fatalf("second processor: %+v", st)
	}
	if st.Stats.Rebalances == 0 {
		t.Fatal("second processor was never assigned")
	}
}

// TestBatchProcessorSkipsUndecodableRecordsAndFailedBatches checks Skip: a
// record that does not decode is skipped alone, a batch whose handler
// panics is skipped whole, and the processor goes on.
func TestBatchProcessorSkipsUndecodableRecordsAndFailedBatches(t *testing.T) {
	b := startBroker(t)
	emitKeyed(t, b, 1, "skip-in", "k", "1", "k", "2", "k", "x", "k", "4", "k", "5", "k", "6", "k", "7", "k", "8", "k", "9")
	var (
		mu      sync.Mutex
		handled [][]int64
	)
	bg := sluice.DefineBatchGroup[string, int64]("skipper")
	sluice.BatchInput(bg, "skip-in", codec.String(), codec.Int64())
	sluice.HandleBatches(bg, func(_ sluice.BatchContext, recs []sluice.Record[string, int64], _ sluice.Sender) error {
		var vs []int64
		for _, r := range recs {
			if r.Value == 7 {
				panic("seven")
			}
			vs = append(vs, r.Value)
		}
		mu.Lock()
		handled = append(handled, vs)
		mu.Unlock()
		return nil
	})
	p, _ := runBatchProcessor(t, bg, batchOpts(b, 1, t.TempDir(),
		sluice.BatchSize(4), sluice.BatchWait(time.Second), sluice.OnError(sluice.Skip))...)
	waitFor(t, 30*time.Second, func() error {
		if st := p.Stats(); st.Records != 9 {
			return fmt.Errorf("%d records in batches, want 9", st.Records)
		}
		return nil
	})
	mu.Lock()
	got := fmt.Sprint(handled)
	mu.Unlock()
	if got != "[[1 2 4] [9]]" {
		t.Fatalf("handled %s, want [[1 2 4] [9]]", got)
	}
	if st := p.Stats(); st.Skipped != 5 || st.FailedBatches != 1 || st.Batches != 3 {
		t.Fatalf("stats: %d skipped, %d failed batches, %d batches; want 5, 1, 3", st.Skipped, st.FailedBatches, st.Batches)
	}
}

// firstByte is a codec that, like many a hand-written one, indexes its
// input without checking it: an empty value makes Decode panic.
type firstByte struct{}

func (firstByte) Encode(b byte) ([]byte, error) { return []byte{b}, nil }
func (firstByte) Decode(p []byte) (byte, error) { return p[0], nil }

// A batch input's codec that panics on a record fails that record alone,
// as one that returns an error does, instead of crashing the process.
func TestBatchProcessorDeadLettersARecordItsCodecPanicsOn(t *testing.T) {
	b := startBroker(t)
	emitKeyed(t, b, 1, "panicky-in", "k", "a", "k", "", "k", "b")
	var (
		mu      sync.Mutex
		handled []string
	)
	bg := sluice.DefineBatchGroup[string, byte]("panicky")
	sluice.BatchInput(bg, "panicky-in", codec.String(), firstByte{})
	sluice.HandleBatches(bg, func(_ sluice.BatchContext, recs []sluice.Record[string, byte], _ sluice.Sender) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			handled = append(handled, string(r.Value))
		}
		return nil
	})
	p, _ := runBatchProcessor(t, bg, batchOpts(b, 1, t.TempDir(),
		sluice.BatchWait(100*time.Millisecond), sluice.OnError(sluice.DeadLetter("panicky-dead")))...)
	dead := readAll(t, b.Addrs(), "panicky-dead", 1)
	hs := map[string]string{}
	for _, h := range dead[0].Headers {
		hs[h.Key] = string(h.Value)
	}
	if hs[sluice.HeaderErrorKind] != "decode" || hs[sluice.HeaderSourceOffset] != "1" {
		t.Errorf("dead letter headers %v, want kind decode of offset 1", hs)
	}
	waitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if got := fmt.Sprint(handled); got != "[a b]" {
			return fmt.Errorf("handled %s, want [a b]", got)
		}
		return nil
	})
	if st := p.Stats(); st.DeadLettered != 1 {
		t.Errorf("%d dead-lettered, want 1", st.DeadLettered)
	}
}
