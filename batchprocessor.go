package sluice

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Batch defaults, as Kasper's.
const (
	defaultBatchSize = 1000
	defaultBatchWait = 5 * time.Second
)

// batchOpt is an option of batch processors alone.
type batchOpt func(*batchConfig)

func (o batchOpt) applyBatchProcessor(c *processorConfig) { o(&c.batch) }

// BatchSize sets how many records a batch holds at most: a batch is handled
// as soon as it has n records. It must be positive, or NewBatchProcessor
// fails. Batch processors only. Default: 1000.
func BatchSize(n int) BatchProcessorOpt {
	return batchOpt(func(c *batchConfig) { c.size = n })
}

// BatchWait sets how long a batch waits for more records after its first
// one arrived before it is handled with what it has. Each partition has its
// own clock, so a quiet partition does not hold up a busy one. It must be
// positive, or NewBatchProcessor fails. Batch processors only. Default: 5s.
func BatchWait(d time.Duration) BatchProcessorOpt {
	return batchOpt(func(c *batchConfig) { c.wait = d })
}

// BatchProcessor runs a batch group over the partitions its consumer group
// assigns to it: one task per partition number, which collects the records
// of that partition of every input into batches and hands each batch to the
// group's handler. It shares the rest with Processor: the consumer group
// and its co-partitioning balancer, the table's local store, restore and
// changelog, the guarantees, the error policies and the graceful stop.
type BatchProcessor[K, V any] struct {
	p     *Processor[[]byte]
	bg    *BatchGroup[K, V]
	stats *batchStats
}

// NewBatchProcessor checks the group definition and the options and returns
// a processor for the group. It does not connect until Run. It takes the
// options of NewProcessor, and BatchSize and BatchWait.
//
// A batch is handled when it holds BatchSize records or BatchWait after its
// first record arrived. Then, at least once (the default): the handler runs;
// if it succeeds, the group's BatchState stores are flushed, what it sent and
// its table writes are produced and acknowledged by Kafka, the table writes
// reach the local store, and only then are the batch's offsets marked for
// commit (every CommitInterval). Records waiting in an open batch are never
// committed: if the processor stops or loses the partition, they are
// dropped and handled by the partition's next owner.
//
// With Guarantee(ExactlyOnce), what batches sent, their table writes and
// their offsets are committed in one transaction every CommitInterval, whose
// default for a batch processor is BatchWait. The transaction commits the
// offsets of every record fetched, so a commit closes the open batches
// early and handles them in the transaction: choose a CommitInterval of at
// least BatchWait to keep batches whole.
//
// When a record's key or value does not decode, the error policy (OnError)
// applies to that record alone and the others are handled. When the handler
// returns an error or panics, the batch leaves no effects in Kafka (its table
// writes are undone, what it sent is dropped; writes to BatchState stores
// stay) and the policy applies to the whole batch: Fail stops the processor
// with a BatchError naming the batch's topics, partition and offsets, none
// of which is committed; Skip goes on past the batch's records; DeadLetter
// writes each of them to the dead-letter topic, with the same headers as a
// Processor's dead letters, before going on.
func NewBatchProcessor[K, V any](bg *BatchGroup[K, V], opts ...BatchProcessorOpt) (*BatchProcessor[K, V], error) {
	if bg == nil {
		return nil, errors.New("batch processor: group is nil")
	}
	if err := bg.Validate(); err != nil {
		return nil, err
	}
	stats := &batchStats{partitions: make(map[int32]*partitionBatchStats)}
	run := &batchRun[K, V]{bg: bg, inputs: make(map[string]*batchInput[K, V])}
	for i := range bg.inputs {
		run.inputs[bg.inputs[i].topic] = &bg.inputs[i]
	}
	// The batch defaults come before the user's options, so that an option
	// given zero is refused below rather than taken for the default.
	batchSettings := processorOpt(func(c *processorConfig) {
		c.batch.size, c.batch.wait = defaultBatchSize, defaultBatchWait
	})
	batchDefaults := processorOpt(func(c *processorConfig) {
		if c.commitInterval == 0 && c.guarantee == ExactlyOnce {
			c.commitInterval = max(c.batch.wait, minCommitInterval)
		}
		c.batch.runner, c.batch.owner, c.batch.stats = run, bg, stats
	})
	popts := make([]ProcessorOpt, 0, len(opts)+2)
	popts = append(popts, batchSettings)
	for _, o := range opts {
		if o != nil {
			popts = append(popts, processorOpt(o.applyBatchProcessor))
		}
	}
	p, err := NewProcessor(bg.group(), append(popts, batchDefaults)...)
	if err != nil {
		return nil, err
	}
	if p.cfg.batch.size <= 0 {
		return nil, fmt.Errorf("group %s: BatchSize must be positive, got %d", bg.name, p.cfg.batch.size)
	}
	if p.cfg.batch.wait <= 0 {
		return nil, fmt.Errorf("group %s: BatchWait must be positive, got %v", bg.name, p.cfg.batch.wait)
	}
	if set := p.metrics.set; set != nil {
		stats.sizeObs = set.batchSize.WithLabelValues(bg.name)
		stats.latencyObs = set.batchLatency.WithLabelValues(bg.name)
	}
	return &BatchProcessor[K, V]{p: p, bg: bg, stats: stats}, nil
}

// group returns the record-at-a-time group that the processor machinery
// runs: its inputs, outputs and table (with rows kept encoded).
func (bg *BatchGroup[K, V]) group() *Group[[]byte] {
	g := DefineGroup[[]byte](bg.name)
	if bg.table {
		g.table = encodedRows{}
	}
	for _, in := range bg.inputs {
		g.inputs = append(g.inputs, &inputEdge[[]byte]{topic: in.topic})
	}
	for _, o := range bg.outputs {
		g.outputs[o] = &outputEdge{topic: o}
	}
	return g
}

// encodedRows is the codec of a batch group's rows as its tasks keep them:
// encoded by the table's codec already, and owned by the task, so they pass
// through without copies.
type encodedRows struct{}

func (encodedRows) Encode(b []byte) ([]byte, error) { return b, nil }
func (encodedRows) Decode(b []byte) ([]byte, error) { return b, nil }

// Group returns the processor's group definition.
func (bp *BatchProcessor[K, V]) Group() *BatchGroup[K, V] { return bp.bg }

// Run joins the group and processes batches until ctx is done, then stops
// gracefully: batches being handled are finished and written, open batches
// are dropped uncommitted, and the processor leaves the group. It returns
// nil after a graceful stop, or the first error that stopped processing. A
// BatchProcessor runs once.
func (bp *BatchProcessor[K, V]) Run(ctx context.Context) error {
	if set := bp.p.metrics.set; set != nil {
		defer set.state.attach(bp.reportState)()
	}
	return bp.p.Run(ctx)
}

// reportState reports the batch series the metrics read from Stats.
func (bp *BatchProcessor[K, V]) reportState(add func(d *stateDesc, v float64, labels ...string)) {
	bp.stats.mu.Lock()
	defer bp.stats.mu.Unlock()
	for p, ps := range bp.stats.partitions {
		add(descBehind, float64(ps.behind), bp.bg.name, strconv.Itoa(int(p)))
	}
}

// BatchStats are counts of what a batch processor did, besides those of
// every processor.
type BatchStats struct {
	Stats
	// Batches and Records count the batches handled and their records,
	// including those that failed and that Skip or DeadLetter went past.
	Batches, Records int64
	// FailedBatches counts batches whose handler failed. How the sizes of
	// the batches and their latencies are distributed is what the
	// histograms sluice_batch_size_records and sluice_batch_duration_seconds
	// of Metrics record.
	FailedBatches int64
	// Partitions are the batch counts of each partition the processor
	// owns, in partition order.
	Partitions []BatchPartitionStats
}

// BatchPartitionStats are the batch counts of one partition.
type BatchPartitionStats struct {
	Partition        int32
	Batches, Records int64
	// Behind is how many records of the partition's inputs lie past the
	// last record fetched, up to the high water mark the fetch reported:
	// Kafka's messages behind high water mark, summed over the inputs.
	Behind int64
}

// Stats returns what the processor has done since it was created.
func (bp *BatchProcessor[K, V]) Stats() BatchStats {
	s := BatchStats{Stats: bp.p.Stats()}
	bp.stats.read(&s)
	return s
}

// batchRun is a batch group's handler with its inputs' codecs.
type batchRun[K, V any] struct {
	bg     *BatchGroup[K, V]
	inputs map[string]*batchInput[K, V]
}

func (r *batchRun[K, V]) decode(c *batchCall, recs []*kgo.Record, failed func(*kgo.Record, error) error) error {
	out := make([]Record[K, V], 0, len(recs))
	for _, rec := range recs {
		in := r.inputs[rec.Topic]
		k, err := decodeInput(in.key, rec.Key)
		if err != nil {
			err = fmt.Errorf("key: %w", err)
		} else {
			var v V
			if v, err = decodeInput(in.value, rec.Value); err == nil {
				out = append(out, Record[K, V]{
					Topic:     rec.Topic,
					Partition: rec.Partition,
					Offset:    rec.Offset,
					Timestamp: rec.Timestamp,
					Headers:   headersOf(rec),
					Key:       k,
					Value:     v,
				})
				c.kept = append(c.kept, rec)
				continue
			}
		}
		derr := &DecodeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: err}
		if err := failed(rec, derr); err != nil {
			return err
		}
	}
	c.decoded = out
	return nil
}

func headersOf(r *kgo.Record) []Header {
	if len(r.Headers) == 0 {
		return nil
	}
	hs := make([]Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = Header{Key: h.Key, Value: h.Value}
	}
	return hs
}

func (r *batchRun[K, V]) handle(h *batchHandle) error {
	return r.bg.handler(h, h.c.decoded.([]Record[K, V]), h)
}

func (r *batchRun[K, V]) flushStates(ctx context.Context) error {
	for _, flush := range r.bg.states {
		if err := flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// batchStats are the batch counts of a processor, updated by its tasks.
type batchStats struct {
	mu                         sync.Mutex
	batches, records, failures int64
	partitions                 map[int32]*partitionBatchStats
	// With Metrics, the histograms of the group's series; nil without.
	sizeObs, latencyObs prometheus.Observer
}

type partitionBatchStats struct {
	batches, records, behind int64
}

func (s *batchStats) partition(p int32) *partitionBatchStats {
	ps := s.partitions[p]
	if ps == nil {
		ps = &partitionBatchStats{}
		s.partitions[p] = ps
	}
	return ps
}

// observe counts a batch of n records handled in d.
func (s *batchStats) observe(p int32, n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	s.records += int64(n)
	if s.sizeObs != nil {
		s.sizeObs.Observe(float64(n))
		s.latencyObs.Observe(d.Seconds())
	}
	ps := s.partition(p)
	ps.batches++
	ps.records += int64(n)
}

// failed counts a batch whose handler failed.
func (s *batchStats) failed(int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
}

func (s *batchStats) setBehind(p int32, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partition(p).behind = n
}

// release forgets a partition the processor no longer owns.
func (s *batchStats) release(p int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.partitions, p)
}

func (s *batchStats) read(out *BatchStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out.Batches, out.Records, out.FailedBatches = s.batches, s.records, s.failures
	for _, p := range slices.Sorted(maps.Keys(s.partitions)) {
		ps := s.partitions[p]
		out.Partitions = append(out.Partitions, BatchPartitionStats{Partition: p, Batches: ps.batches, Records: ps.records, Behind: ps.behind})
	}
}
