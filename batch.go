package sluice

// A batch group is processed the way Kasper processes topics: its handler
// receives the records of one partition number, of all its inputs, in
// batches, together with a Sender for its outputs.
//
// Invariants:
//   - A batch holds records of one partition number only; the records of
//     each topic in it are in offset order, and follow the batch before.
//   - A batch closes when it holds BatchSize records, or BatchWait after
//     its first record arrived, whichever comes first (and, exactly once,
//     when the transaction commits).
//   - What a batch's handler sent, its table writes and the dead letters of
//     its failed records are acknowledged by Kafka, and the BatchState
//     stores are flushed, before any of its input offsets is committed.
//     Offsets of records that wait in an open batch are never committed.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
)

// BatchGroup is the definition of a batch processing unit: the streams it
// reads, the handler that receives their records in batches, the topics it
// writes and the stores it keeps state in. Like a Group it is only a
// description; a BatchProcessor runs it.
//
// All inputs of a batch group have keys of type K and values of type V, and
// must have equal partition counts: the batches of partition p hold the
// records of partition p of every input, so records of different topics
// with the same key meet in one handler call.
//
//	bg := sluice.DefineBatchGroup[string, string]("word-count")
//	sluice.BatchInput(bg, "words", codec.String(), codec.String())
//	out := sluice.BatchOutput(bg, "word-counts", codec.String())
//	counts := sluice.BatchTable(bg, codec.Int64())
//	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
//		st := counts.Store(ctx)
//		...
//		return out.Send(s, word, text)
//	})
type BatchGroup[K, V any] struct {
	name    string
	inputs  []batchInput[K, V]
	handler BatchHandler[K, V]
	outputs []string
	table   bool
	states  []func(context.Context) error // Flush of each BatchState store
	errs    []error
}

type batchInput[K, V any] struct {
	topic string
	key   codec.Codec[K]
	value codec.Codec[V]
}

// BatchHandler processes one batch: the records of one partition number,
// from all inputs of the group, in offset order per topic. What it sends
// with out is produced when it returns, before the records' offsets are
// committed. A returned error, or a panic, fails the whole batch, and the
// processor's error policy applies to it (see NewBatchProcessor). The
// records, out and the table store of the call are valid only during the
// call: once the handler returned, Send to out and the table store's calls
// fail, and what they were given is written nowhere. Goroutines the
// handler waits for may use out and the table store at once.
type BatchHandler[K, V any] func(ctx BatchContext, records []Record[K, V], out Sender) error

// Record is one input record of a batch, with its key and value decoded.
type Record[K, V any] struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Headers   []Header
	Key       K
	Value     V
}

// BatchContext is what a batch handler sees besides its records: the
// partition the batch belongs to, and the stores of its group.
type BatchContext interface {
	// Context returns a context that is cancelled when the processor stops.
	Context() context.Context
	// Partition returns the partition number of the batch's records.
	Partition() int32
	// Logger returns the processor's logger with the group and partition
	// attached.
	Logger() *slog.Logger

	batch() *batchHandle
}

// Sender collects what a batch handler sends, through the Send method of
// the group's outputs. The records are produced when the handler returns;
// a Send after that fails. A Sender is safe for concurrent use during its
// handler call.
type Sender interface {
	// Sent returns how many records the handler sent so far in this batch.
	Sent() int

	batch() *batchHandle
}

// DefineBatchGroup starts the definition of the batch group called name,
// whose inputs have keys of type K and values of type V. The name is the
// Kafka consumer group id, and the table topic (see BatchTable) is
// name + "-table".
func DefineBatchGroup[K, V any](name string) *BatchGroup[K, V] {
	bg := &BatchGroup[K, V]{name: name}
	if name == "" {
		bg.errs = append(bg.errs, errors.New("group name is empty"))
	}
	return bg
}

// Name returns the group's name, which is also its Kafka consumer group id.
func (bg *BatchGroup[K, V]) Name() string { return bg.name }

// TableTopic returns the name of the group's table topic, the changelog of
// its BatchTable.
func (bg *BatchGroup[K, V]) TableTopic() string { return bg.name + "-table" }

// Validate reports every mistake in the definition, each naming its edge, or
// nil when the group can run.
func (bg *BatchGroup[K, V]) Validate() error {
	errs := slices.Clone(bg.errs)
	if len(bg.inputs) == 0 {
		errs = append(errs, errors.New("no inputs: a batch group needs at least one BatchInput"))
	}
	if bg.handler == nil {
		errs = append(errs, errors.New("no handler: a batch group needs HandleBatches"))
	}
	return groupError(bg.name, errs)
}

func (bg *BatchGroup[K, V]) fail(format string, args ...any) {
	bg.errs = append(bg.errs, fmt.Errorf(format, args...))
}

func (bg *BatchGroup[K, V]) usesTopic(topic string) (string, bool) {
	for _, in := range bg.inputs {
		if in.topic == topic {
			return "input", true
		}
	}
	if slices.Contains(bg.outputs, topic) {
		return "output", true
	}
	if bg.table && topic == bg.TableTopic() {
		return "table", true
	}
	return "", false
}

func (bg *BatchGroup[K, V]) checkTopic(edge, topic string) bool {
	if err := checkTopicName(topic); err != nil {
		bg.fail("%s: %v", edge, err)
		return false
	}
	if other, ok := bg.usesTopic(topic); ok {
		bg.fail("%s %s: topic is already the group's %s", edge, topic, other)
		return false
	}
	return true
}

// BatchInput makes the group read topic, decoding keys with kc and values
// with vc. A record whose key or value does not decode fails on its own:
// the error policy applies to it, and the rest of its batch is handled.
func BatchInput[K, V any](bg *BatchGroup[K, V], topic string, kc codec.Codec[K], vc codec.Codec[V]) {
	if kc == nil || vc == nil {
		bg.fail("input %s: key and value codecs must not be nil", topic)
		return
	}
	if bg.checkTopic("input", topic) {
		bg.inputs = append(bg.inputs, batchInput[K, V]{topic: topic, key: kc, value: vc})
	}
}

// HandleBatches sets the group's handler. A batch group has exactly one.
func HandleBatches[K, V any](bg *BatchGroup[K, V], h BatchHandler[K, V]) {
	switch {
	case h == nil:
		bg.fail("handler is nil")
	case bg.handler != nil:
		bg.fail("handler: the group already has one")
	default:
		bg.handler = h
	}
}

// BatchOutputTopic is a topic a batch group writes, declared with
// BatchOutput.
type BatchOutputTopic[T any] struct {
	topic string
	codec codec.Codec[T]
	owner any // the *BatchGroup that declared it
}

// BatchOutput declares that the group writes records of type T, encoded with
// c, to topic. The returned handle's Send is the only way to write them.
func BatchOutput[K, V, T any](bg *BatchGroup[K, V], topic string, c codec.Codec[T]) *BatchOutputTopic[T] {
	o := &BatchOutputTopic[T]{topic: topic, codec: c, owner: bg}
	if c == nil {
		bg.fail("output %s: codec is nil", topic)
		return o
	}
	if bg.checkTopic("output", topic) {
		bg.outputs = append(bg.outputs, topic)
	}
	return o
}

// Topic returns the topic's name.
func (o *BatchOutputTopic[T]) Topic() string { return o.topic }

// Send queues v under key for the topic, on the partition the processor's
// Hasher (Partitioning, default Murmur2) chooses for the key. It is produced when the handler returns, with everything
// else the batch sent, before the batch's offsets are committed; if the
// batch fails, nothing it sent is produced.
func (o *BatchOutputTopic[T]) Send(out Sender, key string, v T, headers ...Header) error {
	h := out.batch()
	if o.owner != h.c.owner {
		return fmt.Errorf("send to %s: the output belongs to another group than %s", o.topic, h.c.group)
	}
	b, err := o.codec.Encode(v)
	if err != nil {
		return fmt.Errorf("send to %s: encode: %w", o.topic, err)
	}
	r := &kgo.Record{Topic: o.topic, Key: []byte(key), Value: b, Partition: -1}
	for _, h := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	c, err := h.lock()
	if err != nil {
		return fmt.Errorf("send to %s: sender %w", o.topic, err)
	}
	c.sent = append(c.sent, r)
	c.mu.Unlock()
	return nil
}

// BatchStore is a key-value store a batch group keeps state in, declared
// with BatchTable or BatchState. Its Store method gives a handler the store
// to use in the current batch.
type BatchStore[T any] struct {
	owner any // the *BatchGroup that declared it
	codec codec.Codec[T]
	state kv.Store[T] // nil for the group's table
}

// BatchTable makes the group keep a table of values of type T, encoded with
// c, as a Group's Persist does: each partition number has its own rows, in
// a local store (Pebble by default) backed by the compacted topic
// bg.TableTopic(), restored when the partition is assigned. A handler reads
// and writes the rows of its batch's partition through the store that
// Store returns. A batch's writes are produced to the changelog with its
// outputs (in the same transaction, exactly once), and undone if the batch
// fails. A group has at most one table.
//
// As the rows belong to partitions, a key's row is only the key's row across
// the group when every record about that key is on the same partition, for
// example when the inputs are keyed by it.
func BatchTable[K, V, T any](bg *BatchGroup[K, V], c codec.Codec[T]) *BatchStore[T] {
	s := &BatchStore[T]{owner: bg, codec: c}
	switch {
	case c == nil:
		bg.fail("table: codec is nil")
	case bg.table:
		bg.fail("table: the group already has one")
	default:
		if bg.checkTopic("table", bg.TableTopic()) {
			bg.table = true
		}
	}
	return s
}

// BatchState makes the group keep state in s, a store outside Kafka such as
// Redis, shared by all partitions (and by all processors that use the same
// one). The processor flushes s after each batch's handler returned, before
// it produces what the batch sent and commits its offsets. Writes to s are
// not undone when a batch fails, and are repeated when records are processed
// again after a crash: at least once, they should be idempotent.
func BatchState[K, V, T any](bg *BatchGroup[K, V], s kv.Store[T]) *BatchStore[T] {
	bs := &BatchStore[T]{owner: bg, state: s}
	if s == nil {
		bg.fail("state: store is nil")
		return bs
	}
	bg.states = append(bg.states, s.Flush)
	return bs
}

// Store returns the store for the batch of ctx. A table's store reads and
// writes the rows of the batch's partition, and is valid only during the
// handler call: after it, every call of the store fails. Goroutines of the
// handler may use it during the call; their calls take turns.
func (s *BatchStore[T]) Store(ctx BatchContext) kv.Store[T] {
	h := ctx.batch()
	if s.owner != h.c.owner {
		return failedStore[T]{err: fmt.Errorf("store: it belongs to another group than %s", h.c.group)}
	}
	if s.state != nil {
		return s.state
	}
	return &tableStore[T]{h: h, codec: s.codec}
}

// BatchError is a batch whose handler failed: it returned an error or
// panicked. Under the Fail policy it stops the processor, and none of the
// batch's offsets is committed.
type BatchError struct {
	Group     string
	Partition int32
	// Ranges are the offsets of the batch's records, one range per topic.
	Ranges []OffsetRange
	Err    error
}

// OffsetRange is the offsets First to Last, inclusive, of one topic
// partition.
type OffsetRange struct {
	Topic       string
	First, Last int64
}

func (e *BatchError) Error() string {
	parts := make([]string, len(e.Ranges))
	for i, r := range e.Ranges {
		parts[i] = fmt.Sprintf("%s/%d@%d-%d", r.Topic, e.Partition, r.First, r.Last)
	}
	return fmt.Sprintf("group %s: batch %s: %v", e.Group, strings.Join(parts, ", "), e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// offsetRanges returns the offsets of recs per topic, in the order the
// topics first appear.
func offsetRanges(recs []*kgo.Record) []OffsetRange {
	var rs []OffsetRange
	for _, r := range recs {
		i := slices.IndexFunc(rs, func(o OffsetRange) bool { return o.Topic == r.Topic })
		if i < 0 {
			rs = append(rs, OffsetRange{Topic: r.Topic, First: r.Offset, Last: r.Offset})
			continue
		}
		rs[i].First = min(rs[i].First, r.Offset)
		rs[i].Last = max(rs[i].Last, r.Offset)
	}
	return rs
}
