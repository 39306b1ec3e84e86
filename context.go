package sluice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
)

// Ctx is what every *Context[V] is, whatever its table type. The handles of
// outputs, loopbacks, joins and lookups take a Ctx, so one handle works in
// any callback of its group.
type Ctx interface {
	// Key returns the key of the record being processed.
	Key() string
	// Topic returns the topic of the record being processed.
	Topic() string
	// Partition returns the partition of the record being processed.
	Partition() int32
	// Offset returns the offset of the record being processed.
	Offset() int64
	// Timestamp returns the record's time: its Kafka timestamp, or the
	// time its input's RecordTime gives it.
	Timestamp() time.Time
	// Headers returns the record's headers.
	Headers() []Header
	// Context returns a context that is cancelled when the processor stops.
	Context() context.Context
	// StreamTime returns the partition's stream time: the largest record
	// timestamp its task has seen.
	StreamTime() time.Time

	record() *recordCtx
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// recordCtx is the part of a callback's context that does not depend on the
// table type.
type recordCtx struct {
	ctx  context.Context
	rec  *kgo.Record
	key  string
	at   time.Time // the record's time: its timestamp, or RecordTime's
	io   taskIO
	err  error // misuse of the context, reported after the callback returns
	logs *slog.Logger
	// Where Headers puts the headers it returns: filled, never reused, so
	// that what it returned for a record stays as it was.
	headers []Header
	// The windowed aggregations' folds, by index, reused (windowed.go).
	folds []any
}

// taskIO is what the handles need from the engine running a callback.
type taskIO interface {
	group() string
	emit(owner any, r *kgo.Record) error
	joined(topic string) (store.Store, error)
	lookup(topic string) (*tableView, error)
	streamTime() time.Time
	addToWindows(owner any, index int, key string, p Point, fold windowFold) error
}

// Context is what a handler sees: the record, the row of the record's key
// in the group's table, and the effects the handler causes. Effects are
// collected and made durable in Kafka before the record's offset is
// committed. A Context is valid only during the callback it was passed to.
type Context[V any] struct {
	recordCtx
	e *engine[V]
}

func (c *recordCtx) record() *recordCtx { return c }

// Key returns the key of the record being processed.
func (c *recordCtx) Key() string { return c.key }

// Topic returns the topic of the record being processed.
func (c *recordCtx) Topic() string { return c.rec.Topic }

// Partition returns the partition of the record being processed.
func (c *recordCtx) Partition() int32 { return c.rec.Partition }

// Offset returns the offset of the record being processed.
func (c *recordCtx) Offset() int64 { return c.rec.Offset }

// Timestamp returns the record's time: its Kafka timestamp, or the time
// its input's RecordTime gives it.
func (c *recordCtx) Timestamp() time.Time { return c.at }

// Headers returns the record's headers.
func (c *recordCtx) Headers() []Header {
	n := len(c.rec.Headers)
	if n == 0 {
		return nil
	}
	// The headers of many records share an allocation.
	if cap(c.headers)-len(c.headers) < n {
		c.headers = make([]Header, 0, max(n, headerChunk))
	}
	from := len(c.headers)
	for _, h := range c.rec.Headers {
		c.headers = append(c.headers, Header{Key: h.Key, Value: h.Value})
	}
	return c.headers[from:len(c.headers):len(c.headers)]
}

// headerChunk is how many headers Headers allocates room for at once.
const headerChunk = 64

// Context returns a context that is cancelled when the processor stops.
func (c *recordCtx) Context() context.Context { return c.ctx }

// Logger returns the processor's logger with the group, topic, partition and
// offset of the record attached.
func (c *recordCtx) Logger() *slog.Logger {
	return c.logs.With("topic", c.rec.Topic, "partition", c.rec.Partition, "offset", c.rec.Offset)
}

// misuse records the first wrong use of the context; the record then fails
// as if its handler had returned the error.
func (c *recordCtx) misuse(err error) {
	if c.err == nil {
		c.err = err
	}
}

// Value returns the row of the record's key in the group's table, and
// whether there is one. The value is the handler's own: changing it (a map,
// a slice, what a pointer points to) changes nothing in the table until it
// is passed to SetValue, so the changes of a record that fails are lost
// with it.
func (c *Context[V]) Value() (V, bool) {
	if c.e == nil {
		var zero V
		c.misuse(errConcurrentRow)
		return zero, false
	}
	v, ok, err := c.e.value(c.key)
	if err != nil {
		c.misuse(err)
	}
	return v, ok
}

// SetValue replaces the row of the record's key with v, encoded at once
// with the table's codec: changes to v after the call are not in the row.
// A value the codec cannot encode fails the record, as if its handler had
// returned the encoding error, and the row keeps its earlier value.
func (c *Context[V]) SetValue(v V) {
	if c.e == nil {
		c.misuse(errConcurrentRow)
		return
	}
	if err := c.e.setValue(c.key, v, true); err != nil {
		c.misuse(err)
	}
}

// Delete removes the row of the record's key; the table's changelog gets a
// tombstone when the batch is written.
func (c *Context[V]) Delete() {
	if c.e == nil {
		c.misuse(errConcurrentRow)
		return
	}
	var zero V
	if err := c.e.setValue(c.key, zero, false); err != nil {
		c.misuse(err)
	}
}

// OutputTopic is a topic a group writes, declared with Output.
type OutputTopic[T any] struct {
	topic string
	codec codec.Codec[T]
	owner any // the *Group that declared it
}

// Topic returns the topic's name.
func (o *OutputTopic[T]) Topic() string { return o.topic }

// Emit writes v under key to the topic, on the partition the processor's
// Hasher (Partitioning, default Murmur2) chooses for the key. The record is
// produced with the rest of the batch, before the input offset is committed.
func (o *OutputTopic[T]) Emit(ctx Ctx, key string, v T, headers ...Header) error {
	return emitEncoded(ctx, o.owner, o.topic, o.codec, key, v, headers)
}

// LoopTopic is a group's loopback, declared with Loop.
type LoopTopic[M any] struct {
	topic string
	codec codec.Codec[M]
	owner any // the *Group that declared it
}

// Loopback sends msg to the group's own loop handler for key. The loop
// handler runs in the task that owns key's row, possibly another one: the
// loopback topic is written with the processor's Hasher, so its records are
// always on their key's partition.
//
// The record keeps the time of the record being handled (ctx.Timestamp()):
// it carries it in the header HeaderTime, and the loop handler reads it with
// that time, not the time it was produced. So stream time, windows and
// timers are not moved to the present by loopbacks while old records are
// processed (a backfill, a restore of a backlog).
func (l *LoopTopic[M]) Loopback(ctx Ctx, key string, msg M) error {
	at := ctx.record().at
	return emitEncoded(ctx, l.owner, l.topic, l.codec, key, msg, []Header{{Key: HeaderTime, Value: strconv.AppendInt(nil, at.UnixNano(), 10)}})
}

// HeaderTime is the header in which a loopback record carries its time, in
// decimal nanoseconds since the Unix epoch: the time of the record whose
// handler sent it. The loop handler's ctx.Timestamp() returns it.
const HeaderTime = "sluice-time"

// loopTime returns the time a loopback record carries in HeaderTime, and
// whether it carries one.
func loopTime(r *kgo.Record) (int64, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == HeaderTime {
			ns, err := strconv.ParseInt(string(r.Headers[i].Value), 10, 64)
			return ns, err == nil
		}
	}
	return 0, false
}

func emitEncoded[T any](ctx Ctx, owner any, topic string, c codec.Codec[T], key string, v T, headers []Header) error {
	rc := ctx.record()
	if c == nil {
		return fmt.Errorf("emit to %s: topic was not declared correctly (nil codec)", topic)
	}
	b, err := c.Encode(v)
	if err != nil {
		return fmt.Errorf("emit to %s: encode: %w", topic, err)
	}
	// The record goes to the partition the processor's Hasher places key
	// on. Its key is never nil, which the client would spread over the
	// partitions: an empty key is placed like any other.
	var k []byte
	if key == rc.key && rc.rec.Key != nil {
		k = rc.rec.Key // records are never modified, so the key can be shared
	} else {
		k = []byte(key)
	}
	r := newRecord(len(headers))
	r.Topic, r.Key, r.Value, r.Partition = topic, k, b, -1
	for _, h := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return rc.io.emit(owner, r)
}

// recordWithHeader and recordWithHeaders are a record and room for one or
// two headers, allocated at once: they live as long as one another. Each
// is sized for its count, so that a record of one header (a loopback's
// time, a forwarded header) takes a 208-byte allocation, not the 240 bytes
// of room for two.
type recordWithHeader struct {
	r  kgo.Record
	hs [1]kgo.RecordHeader
}

type recordWithHeaders struct {
	r  kgo.Record
	hs [2]kgo.RecordHeader
}

// newRecord returns an empty record with room for n headers, and a nil
// Headers slice when n is 0.
func newRecord(n int) *kgo.Record {
	switch n {
	case 0:
		return new(kgo.Record)
	case 1:
		rh := new(recordWithHeader)
		rh.r.Headers = rh.hs[:0:1]
		return &rh.r
	case 2:
		rh := new(recordWithHeaders)
		rh.r.Headers = rh.hs[:0:2]
		return &rh.r
	default:
		return &kgo.Record{Headers: make([]kgo.RecordHeader, 0, n)}
	}
}

// JoinedTable is a co-partitioned table a group reads, declared with Join.
type JoinedTable[T any] struct {
	topic string
	codec codec.Codec[T]
}

// Get returns the joined table's row for the key of the record being
// processed, and whether there is one. A row the codec cannot decode, or
// panics on, is an error.
func (j *JoinedTable[T]) Get(ctx Ctx) (T, bool, error) {
	var zero T
	rc := ctx.record()
	st, err := rc.io.joined(j.topic)
	if err != nil {
		return zero, false, err
	}
	return getDecoded(st, j.topic, j.codec, rc.key)
}

// LookupTable is a table a group reads in full, declared with Lookup.
type LookupTable[T any] struct {
	topic string
	codec codec.Codec[T]
}

// Get returns the table's row for key, and whether there is one. A row
// the codec cannot decode, or panics on, is an error.
func (l *LookupTable[T]) Get(ctx Ctx, key string) (T, bool, error) {
	var zero T
	rc := ctx.record()
	tv, err := rc.io.lookup(l.topic)
	if err != nil {
		return zero, false, err
	}
	raw, err := tv.get(key)
	if errors.Is(err, ErrNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	v, err := decodeInput(l.codec, raw)
	if err != nil {
		return zero, false, fmt.Errorf("lookup %s key %q: decode: %w", l.topic, key, err)
	}
	return v, true, nil
}

func getDecoded[T any](st store.Store, topic string, c codec.Codec[T], key string) (T, bool, error) {
	var zero T
	raw, err := st.Get([]byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("table %s key %q: %w", topic, key, err)
	}
	v, err := decodeInput(c, raw)
	if err != nil {
		return zero, false, fmt.Errorf("table %s key %q: decode: %w", topic, key, err)
	}
	return v, true, nil
}
