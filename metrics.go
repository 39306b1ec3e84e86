package sluice

// Prometheus metrics of processors, views and emitters.
//
// Invariants:
//   - A registerer holds one set of sluice collectors, however many
//     processors, views and emitters use it: the first to register creates
//     them, the others find them through prometheus.AlreadyRegisteredError
//     and tell their series apart by labels (group, topic, partition, view).
//   - Counters on the record path are resolved to their label values once,
//     when a task starts; a record costs an atomic add, never a label lookup.
//   - Gauges (lag, rows, restore progress, states) and the counters a
//     processor keeps anyway (rebalances, transactions, failed records) are
//     read when the registry is gathered, from the objects running at that
//     moment: a partition that moved away or an object that stopped leaves
//     no stale series. What a stopped object counted is kept, so counters
//     never go down.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/store"
)

// Metrics makes a processor, view or emitter export Prometheus metrics to
// reg. Several objects may share one registerer: they share its collectors
// and are told apart by labels. Default: no metrics are exported.
//
// Processors export, labelled by group:
//
//	sluice_records_consumed_total{group,topic,partition}  records processed
//	sluice_bytes_consumed_total{group,topic,partition}    their key and value bytes
//	sluice_records_produced_total{group,topic}            records written: changelog, outputs, loopbacks, dead letters
//	sluice_bytes_produced_total{group,topic}              their uncompressed bytes
//	sluice_handler_duration_seconds{group,topic}          handler time per record (histogram)
//	sluice_batch_records{group}                           records per task batch (histogram)
//	sluice_commit_duration_seconds{group}                 offset commit or transaction end round trips (histogram)
//	sluice_transactions_total{group,outcome}              exactly once: committed, aborted
//	sluice_records_failed_total{group,outcome}            failed, skipped, dead_lettered
//	sluice_records_misplaced_total{group,topic}           input records not on their key's partition (see Partitioning)
//	sluice_rebalances_total{group}                        assignments received
//	sluice_consumer_lag_records{group,topic,partition}    high watermark minus committed offset
//	sluice_partitions{group,state}                        partitions owned: restoring, running
//	sluice_table_rows{group,partition}                    rows of the table, from stores that count them
//	sluice_store_operations_total{group,partition,op}     store reads (get) and batch writes (apply)
//	sluice_restored_records{group,partition}              changelog records read by the last restore
//	sluice_restore_remaining_records{group,partition}     changelog records still to restore
//
// Processors with Standbys also export:
//
//	sluice_standby_partitions{group,state}                warm copies of partitions not owned: restoring, following
//	sluice_standby_behind_records{group,partition}        changelog records a copy has yet to read, up to the last high watermark
//
// Processors of groups with windowed aggregations (Aggregate) also export:
//
//	sluice_windows_open{group,partition}                  windows not closed yet, as of the partition's last batch
//	sluice_window_results_total{group,kind}               results handed to handlers: final, update
//	sluice_window_late_records_total{group}               records whose every window had closed (LateError)
//	sluice_windows_purged_total{group}                    closed windows deleted once their retention ended
//
// Batch processors export these too, and:
//
//	sluice_batch_size_records{group}                      records per batch handed to the handler (histogram)
//	sluice_batch_duration_seconds{group}                  batch closed to effects acknowledged (histogram)
//	sluice_records_behind_high_watermark{group,partition} input records past the last fetched, up to the high watermark
//
// Rows are reported only from stores that count them as they change them
// (store.RowCounter): the memory store, and Pebble with pebble.CountRows,
// which the default storage of a processor with Metrics uses. Views export
// sluice_view_rows{view} (all partitions, when every store counts) and
// sluice_view_state{view,state}; emitters export
// sluice_emitter_records_total{topic} and sluice_emitter_errors_total{topic}.
//
// The lag is measured every few seconds from the partitions' end offsets and
// the group's committed offsets; a partition has no lag series until it was
// measured.
func Metrics(reg prometheus.Registerer) Opt {
	return clientOpt(func(c *clientConfig) { c.metrics = reg })
}

// metricSet is the collectors of one registerer.
type metricSet struct {
	consumed, consumedBytes *prometheus.CounterVec
	produced, producedBytes *prometheus.CounterVec
	handler, batch, commit  *prometheus.HistogramVec
	batchSize, batchLatency *prometheus.HistogramVec // batch groups
	storeOps                *prometheus.CounterVec
	emitted, emitErrors     *prometheus.CounterVec
	misplaced               *prometheus.CounterVec
	state                   *stateCollector
}

// metricSetOf returns the sluice collectors of reg, registering them on
// first use.
func metricSetOf(reg prometheus.Registerer) (*metricSet, error) {
	var errs []error
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c, err := registerOnce(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
		errs = append(errs, err)
		return c
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h, err := registerOnce(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
		errs = append(errs, err)
		return h
	}
	s := &metricSet{
		consumed:      counter("sluice_records_consumed_total", "Records processed by a group's tasks.", "group", "topic", "partition"),
		consumedBytes: counter("sluice_bytes_consumed_total", "Key and value bytes of the records processed by a group's tasks.", "group", "topic", "partition"),
		produced:      counter("sluice_records_produced_total", "Records a group wrote and Kafka acknowledged: changelog, outputs, loopbacks and dead letters.", "group", "topic"),
		producedBytes: counter("sluice_bytes_produced_total", "Uncompressed bytes of the records a group wrote.", "group", "topic"),
		handler: histogram("sluice_handler_duration_seconds", "Time a group's handler took for one record, decoding included.",
			prometheus.ExponentialBuckets(1e-6, 4, 12), "group", "topic"),
		batch: histogram("sluice_batch_records", "Records per task batch: what a task processed before writing the effects.",
			prometheus.ExponentialBuckets(1, 4, 9), "group"),
		commit: histogram("sluice_commit_duration_seconds", "Round trip of an offset commit, or of a transaction end exactly once.",
			prometheus.ExponentialBuckets(1e-4, 4, 10), "group"),
		// Finer buckets than the others', since these are what batch
		// latency quantiles are read from: each bound 1.5 times the last,
		// sizes up to about 127,000 records, latencies up to about 97s.
		batchSize: histogram("sluice_batch_size_records", "Records per batch handed to a batch group's handler.",
			prometheus.ExponentialBuckets(1, 1.5, 30), "group"),
		batchLatency: histogram("sluice_batch_duration_seconds", "Time from a batch closing to its effects being acknowledged: decoding, the handler, flushing stores, writing to Kafka.",
			prometheus.ExponentialBuckets(1e-4, 1.5, 35), "group"),
		storeOps:   counter("sluice_store_operations_total", "Operations on a group's local store: get reads a row, apply writes a batch.", "group", "partition", "op"),
		emitted:    counter("sluice_emitter_records_total", "Records an emitter wrote and Kafka acknowledged.", "topic"),
		emitErrors: counter("sluice_emitter_errors_total", "Records an emitter failed to write.", "topic"),
		misplaced:  counter("sluice_records_misplaced_total", "Input records not on the partition the group's hasher places their key on.", "group", "topic"),
	}
	st, err := registerOnce(reg, newStateCollector())
	errs = append(errs, err)
	s.state = st
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// registerOnce registers c, or returns the equal collector registered
// before it.
func registerOnce[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("metrics: %w", err)
}

// ErrorEvent is an error a processor met and went on from, or stopped at.
type ErrorEvent struct {
	Time    time.Time
	Message string
}

// copyEvent returns a copy of e, or nil.
func copyEvent(e *ErrorEvent) *ErrorEvent {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// processorMetrics is what a processor counts for Stats and for the
// metrics: always the totals, and the Prometheus series when Metrics is set.
type processorMetrics struct {
	group  string
	set    *metricSet // nil without Metrics
	logger *slog.Logger

	consumed, produced atomic.Int64
	failed             atomic.Int64 // records the Fail policy stopped at
	// Windows: late records, results handed to handlers (final and
	// updates) and windows purged.
	late, windowFinals, windowUpdates, windowsPurged atomic.Int64

	// Series resolved once; nil without Metrics.
	commitDuration, batch         prometheus.Observer
	producedByTopic, bytesByTopic sync.Map // topic → prometheus.Counter
	misplacedByTopic              sync.Map // topic → prometheus.Counter

	mu              sync.Mutex
	lastError       *ErrorEvent
	partitionErrors map[int32]*ErrorEvent
	lag             map[int32][]InputStatus
	lagMeasured     time.Time
}

func newProcessorMetrics(group string, c *clientConfig) (*processorMetrics, error) {
	m := &processorMetrics{group: group, logger: c.logger.With("group", group), partitionErrors: make(map[int32]*ErrorEvent)}
	if c.metrics == nil {
		return m, nil
	}
	set, err := metricSetOf(c.metrics)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", group, err)
	}
	m.set = set
	m.commitDuration = set.commit.WithLabelValues(group)
	m.batch = set.batch.WithLabelValues(group)
	return m, nil
}

// setError remembers err, if any, as the processor's last error, and
// partition p's when p is not negative; what says where it happened.
func (m *processorMetrics) setError(p int32, what string, err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	if what != "" {
		msg = what + ": " + msg
	}
	e := &ErrorEvent{Time: time.Now(), Message: msg}
	m.mu.Lock()
	m.lastError = e
	if p >= 0 {
		m.partitionErrors[p] = e
	}
	m.mu.Unlock()
}

// recordFailed remembers the error of a failed record, and counts it if the
// policy is Fail (Skip and DeadLetter are counted by the processor).
func (m *processorMetrics) recordFailed(p int32, kind policyKind, err error) {
	if kind == failPolicy {
		m.failed.Add(1)
	}
	var lerr *LateError
	if errors.As(err, &lerr) {
		m.late.Add(1)
	}
	m.setError(p, "", err)
}

// windowResult counts a window result handed to a handler.
func (m *processorMetrics) windowResult(final bool) {
	if final {
		m.windowFinals.Add(1)
	} else {
		m.windowUpdates.Add(1)
	}
}

// clientOpts are the options of the group's client: hooks that count what
// it produces and time its commits.
func (m *processorMetrics) clientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.WithHooks(processorHooks{m})}
}

// committed is the callback of automatic commits, at least once: it keeps
// the last failed commit.
func (m *processorMetrics) committed(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			m.logger.Warn("commit failed", "err", err)
			m.setError(-1, "commit", err)
		}
		return
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				m.logger.Warn("commit failed", "topic", t.Topic, "partition", p.Partition, "err", err)
				m.setError(p.Partition, "commit "+t.Topic, err)
			}
		}
	}
}

type processorHooks struct{ m *processorMetrics }

// Request keys of an offset commit and a transaction end.
const (
	offsetCommitKey = 8
	endTxnKey       = 26
)

func (h processorHooks) OnProduceBatchWritten(_ kgo.BrokerMetadata, topic string, _ int32, bm kgo.ProduceBatchMetrics) {
	m := h.m
	m.produced.Add(int64(bm.NumRecords))
	if m.set == nil {
		return
	}
	m.topicCounter(&m.producedByTopic, m.set.produced, topic).Add(float64(bm.NumRecords))
	m.topicCounter(&m.bytesByTopic, m.set.producedBytes, topic).Add(float64(bm.UncompressedBytes))
}

func (h processorHooks) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if h.m.commitDuration != nil && (key == offsetCommitKey || key == endTxnKey) && e2e.Err() == nil {
		h.m.commitDuration.Observe(e2e.DurationE2E().Seconds())
	}
}

// misplacedRecord counts an input record of topic not on its key's
// partition.
func (m *processorMetrics) misplacedRecord(topic string) {
	if m.set != nil {
		m.topicCounter(&m.misplacedByTopic, m.set.misplaced, topic).Inc()
	}
}

// topicCounter returns the counter of topic, resolving its labels once.
func (m *processorMetrics) topicCounter(cache *sync.Map, vec *prometheus.CounterVec, topic string) prometheus.Counter {
	if c, ok := cache.Load(topic); ok {
		return c.(prometheus.Counter)
	}
	c, _ := cache.LoadOrStore(topic, vec.WithLabelValues(m.group, topic))
	return c.(prometheus.Counter)
}

// taskMetrics is what one task counts. Its methods run on the task's
// goroutine, except where said.
type taskMetrics struct {
	proc      *processorMetrics
	partition int32
	consumed  atomic.Int64 // records processed; read by Stats
	// openWindows is the partition's open windows as of the last batch;
	// read by Stats.
	openWindows atomic.Int64
	// rows is the task's store once restored, if it counts its rows; read
	// by Stats.
	rows    atomic.Pointer[rowCounter]
	timed   bool // whether handler durations are observed
	inputs  map[string]*inputMetrics
	cur     *inputMetrics
	gets    prometheus.Counter
	applies prometheus.Counter
}

// inputMetrics are a task's series of one input topic.
type inputMetrics struct {
	records, bytes prometheus.Counter
	handler        prometheus.Observer
}

func (m *taskMetrics) init(pm *processorMetrics, partition int32, inputs []string) {
	m.proc, m.partition = pm, partition
	if pm.set == nil {
		return
	}
	part := strconv.Itoa(int(partition))
	m.timed = true
	m.inputs = make(map[string]*inputMetrics, len(inputs))
	for _, topic := range inputs {
		m.inputs[topic] = &inputMetrics{
			records: pm.set.consumed.WithLabelValues(pm.group, topic, part),
			bytes:   pm.set.consumedBytes.WithLabelValues(pm.group, topic, part),
			handler: pm.set.handler.WithLabelValues(pm.group, topic),
		}
	}
	m.gets = pm.set.storeOps.WithLabelValues(pm.group, part, "get")
	m.applies = pm.set.storeOps.WithLabelValues(pm.group, part, "apply")
}

// took counts records of one topic partition about to be processed.
func (m *taskMetrics) took(recs []*kgo.Record) {
	m.consumed.Add(int64(len(recs)))
	m.proc.consumed.Add(int64(len(recs)))
	if m.inputs == nil {
		return
	}
	im := m.inputs[recs[0].Topic]
	m.cur = im
	if im == nil {
		return
	}
	var n int
	for _, r := range recs {
		n += len(r.Key) + len(r.Value)
	}
	im.records.Add(float64(len(recs)))
	im.bytes.Add(float64(n))
}

// handled observes the handler time of one record that began at start.
func (m *taskMetrics) handled(start time.Time) {
	if m.cur != nil {
		m.cur.handler.Observe(time.Since(start).Seconds())
	}
}

// wrote observes a batch of n records about to be written.
func (m *taskMetrics) wrote(n int) {
	if m.proc.batch != nil && n > 0 {
		m.proc.batch.Observe(float64(n))
	}
}

// storeGet counts a read of the store.
func (m *taskMetrics) storeGet() {
	if m.gets != nil {
		m.gets.Inc()
	}
}

// applied counts a batch applied to the store.
func (m *taskMetrics) applied() {
	if m.applies != nil {
		m.applies.Inc()
	}
}

// rowCounter holds a store that counts its rows.
type rowCounter struct{ store.RowCounter }

// countRows makes the task report the rows of its restored store, if the
// store counts them (see store.RowCounter): rows are never counted by
// reading them.
func (m *taskMetrics) countRows(st store.Store) {
	if c, ok := st.(store.RowCounter); ok {
		m.rows.Store(&rowCounter{c})
	}
}

// tableRows returns the row count of the task's table, or -1 when its
// store does not count its rows or is not restored yet.
func (m *taskMetrics) tableRows() int64 {
	if c := m.rows.Load(); c != nil {
		if n, ok := c.Rows(); ok {
			return n
		}
	}
	return -1
}
