package sluice

// An Emitter hands every record to its Kafka client at once; the client
// batches them (ProducerLinger, ProducerBatchMaxBytes) and bounds what is
// buffered (MaxBufferedRecords).
//
// Invariants:
//   - No lock is held across a call that can block: Produce blocks while
//     the client's buffer is full, and a callback may emit.
//   - Callbacks run on the emitter's own goroutine, in the order the client
//     completes records, never on the client's: a callback that emits
//     while the buffer is full waits for room that the client can then
//     still make.
//   - Records in flight are counted per epoch; Flush seals the current
//     epoch and waits for it and every earlier one, never for records
//     emitted after it was called. A record leaves its epoch after its
//     callback ran.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/kafka"
)

type emitterConfig struct {
	client       clientConfig
	threshold    int
	interval     time.Duration
	closeTimeout time.Duration
}

type emitterOpt func(*emitterConfig)

func (o emitterOpt) applyEmitter(c *emitterConfig) { o(c) }

// DeliveryThreshold once made EmitAsync hold records in the emitter until n
// were waiting.
//
// Deprecated: the emitter hands every record to its Kafka client at once,
// and the client batches by size and time (DeliveryInterval), sending a
// batch early when it is full or MaxBufferedRecords are waiting. n has no
// effect beyond being checked not to be negative.
func DeliveryThreshold(n int) EmitterOpt {
	return emitterOpt(func(c *emitterConfig) { c.threshold = n })
}

// DeliveryInterval sets how long the Kafka client lingers: records of a
// partition wait up to d for more to send with them, unless a batch fills
// up, MaxBufferedRecords are waiting, or Flush or Close is called. It is
// franz-go's ProducerLinger: an emitter given both it and kgo.ProducerLinger
// in KafkaOptions makes NewEmitter fail.
// Default: 0, the client's own linger (10ms in franz-go v1.22).
func DeliveryInterval(d time.Duration) EmitterOpt {
	return emitterOpt(func(c *emitterConfig) { c.interval = d })
}

// CloseTimeout bounds Close: it waits up to d for the records emitted before
// it and for the client to disconnect, then returns; the records left fail,
// and their callbacks report ErrClosed. It must be positive, or NewEmitter
// fails: a Close that may not wait would give up on every record still in
// flight. Default: 30s.
func CloseTimeout(d time.Duration) EmitterOpt {
	return emitterOpt(func(c *emitterConfig) { c.closeTimeout = d })
}

// Emitter writes typed records to one topic. Keys are placed on partitions
// with the emitter's Hasher (Partitioning, default Murmur2, as the Java
// client and librdkafka's murmur2 partitioner do), unless a partition is
// given. An Emitter is safe for concurrent use.
type Emitter[V any] struct {
	topic      string
	codec      codec.Codec[V]
	cfg        emitterConfig
	cl         *kgo.Client
	partitions int32
	outcomes   *emitterCounts
	callbacks  *callbackQueue

	mu       sync.Mutex
	closed   bool
	current  *epoch
	unsealed []*epoch // sealed epochs with records still in flight
}

type epoch struct {
	inFlight int
	sealed   bool
	done     chan struct{}
}

// NewEmitter connects an emitter for topic, creating the topic with the
// TopicDefaults if it does not exist.
func NewEmitter[V any](topic string, c codec.Codec[V], opts ...EmitterOpt) (*Emitter[V], error) {
	if err := checkTopicName(topic); err != nil {
		return nil, fmt.Errorf("emitter: %w", err)
	}
	if c == nil {
		return nil, fmt.Errorf("emitter %s: codec is nil", topic)
	}
	cfg := emitterConfig{client: defaultClientConfig(), closeTimeout: 30 * time.Second}
	for _, o := range opts {
		if o != nil {
			o.applyEmitter(&cfg)
		}
	}
	if cfg.threshold < 0 || cfg.interval < 0 {
		return nil, fmt.Errorf("emitter %s: DeliveryThreshold and DeliveryInterval must not be negative", topic)
	}
	if cfg.closeTimeout <= 0 {
		return nil, fmt.Errorf("emitter %s: CloseTimeout must be positive, got %v", topic, cfg.closeTimeout)
	}
	if err := cfg.client.check("emitter " + topic); err != nil {
		return nil, err
	}
	owned := emitterOwned
	if cfg.interval > 0 {
		owned = append(slices.Clip(owned), emitterLinger)
	}
	if err := checkKafkaOptions("emitter "+topic, cfg.client.kafkaOpts, owned); err != nil {
		return nil, err
	}
	outcomes, err := newEmitterCounts(topic, &cfg.client)
	if err != nil {
		return nil, fmt.Errorf("emitter %s: %w", topic, err)
	}
	extra := []kgo.Opt{kgo.RecordPartitioner(cfg.client.partitioner()), kgo.WithHooks(outcomes)}
	if cfg.interval > 0 {
		extra = append(extra, kgo.ProducerLinger(cfg.interval))
	}
	cl, err := kgo.NewClient(cfg.client.kgoOpts(extra...)...)
	if err != nil {
		return nil, fmt.Errorf("emitter %s: client: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counts, err := kafka.EnsureTopics(ctx, cl, kafka.TopicSpec{
		Name: topic, Partitions: cfg.client.partitions, Replication: cfg.client.replication,
	})
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("emitter %s: %w", topic, err)
	}
	return &Emitter[V]{
		topic: topic, codec: c, cfg: cfg, cl: cl, partitions: counts[topic],
		current: newEpoch(), outcomes: outcomes, callbacks: newCallbackQueue(),
	}, nil
}

// Topic returns the topic the emitter writes.
func (e *Emitter[V]) Topic() string { return e.topic }

// Partitions returns the topic's partition count when the emitter connected.
func (e *Emitter[V]) Partitions() int32 { return e.partitions }

// Emit writes v under key and returns once Kafka acknowledged it.
func (e *Emitter[V]) Emit(ctx context.Context, key string, v V, headers ...Header) error {
	r, err := e.record(-1, key, v, headers)
	if err != nil {
		return err
	}
	return e.produceSync(ctx, r)
}

// EmitToPartition writes v under key to an explicit partition and returns
// once Kafka acknowledged it.
func (e *Emitter[V]) EmitToPartition(ctx context.Context, partition int32, key string, v V, headers ...Header) error {
	if partition < 0 || partition >= e.partitions {
		return fmt.Errorf("emitter %s: partition %d out of range [0, %d)", e.topic, partition, e.partitions)
	}
	r, err := e.record(partition, key, v, headers)
	if err != nil {
		return err
	}
	return e.produceSync(ctx, r)
}

// EmitAsync writes v under key without waiting for Kafka, and calls done
// (if not nil) with the outcome once Kafka acknowledged or rejected the
// record. It blocks only while the client's buffer is full
// (MaxBufferedRecords, 10000 by default). Records written with EmitAsync
// keep their order per key among themselves. Callbacks run one at a time,
// on a goroutine of the emitter, in the order the records completed,
// never on the caller's, not even for a record that was never sent (it
// did not encode, or the emitter is closed); a callback may emit, but
// must not call Flush or Close, which wait for it.
func (e *Emitter[V]) EmitAsync(key string, v V, done func(error), headers ...Header) {
	r, err := e.record(-1, key, v, headers)
	finish, ok := e.track()
	if err != nil {
		e.callBack(done, err, finish)
		return
	}
	if !ok {
		e.callBack(done, ErrClosed, nil)
		return
	}
	e.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
		err = e.wrap(err)
		e.callbacks.push(func() {
			if done != nil {
				done(err)
			}
			finish()
		})
	})
}

// callBack queues done, if not nil, with the error of a record that was
// never handed to the client, so that it too runs on the emitter's
// goroutine, never on the caller's, which may hold a lock that done takes.
// finish, if not nil, counts the record out once done ran, so that Flush
// waits for its callback as for the others.
func (e *Emitter[V]) callBack(done func(error), err error, finish func()) {
	e.callbacks.push(func() {
		if done != nil {
			done(err)
		}
		if finish != nil {
			finish()
		}
	})
}

// Flush waits until every record emitted before it is acknowledged or
// failed and its callback ran, making the client send at once what it
// holds.
func (e *Emitter[V]) Flush(ctx context.Context) error {
	waits := e.seal()
	if len(waits) == 0 {
		return nil
	}
	// The client's Flush ends every linger at once, but it returns only
	// once nothing at all is buffered, records emitted after this call
	// included, which under a steady stream of emits may be never. So it
	// runs only until the records emitted before this call are done.
	fctx, stop := context.WithCancel(ctx)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		_ = e.cl.Flush(fctx)
	}()
	defer func() {
		stop()
		<-flushed
	}()
	for _, ep := range waits {
		select {
		case <-ep.done:
		case <-ctx.Done():
			return fmt.Errorf("emitter %s: flush: %w", e.topic, ctx.Err())
		}
	}
	return nil
}

// seal ends the current epoch and returns every epoch with records still in
// flight.
func (e *Emitter[V]) seal() []*epoch {
	e.mu.Lock()
	defer e.mu.Unlock()
	sealed := e.current
	sealed.sealed = true
	if sealed.inFlight == 0 {
		close(sealed.done)
	} else {
		e.unsealed = append(e.unsealed, sealed)
	}
	e.current = newEpoch()
	return slices.Clone(e.unsealed)
}

func newEpoch() *epoch { return &epoch{done: make(chan struct{})} }

// track counts a record in flight in the current epoch and returns the
// function that counts it out; it reports false once the emitter is closed.
func (e *Emitter[V]) track() (finish func(), ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, false
	}
	ep := e.current
	ep.inFlight++
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		ep.inFlight--
		if ep.inFlight == 0 && ep.sealed {
			close(ep.done)
			e.unsealed = slices.DeleteFunc(e.unsealed, func(x *epoch) bool { return x == ep })
		}
	}, true
}

// Close flushes, waiting no longer than CloseTimeout, and disconnects;
// records not delivered by then fail with ErrClosed. Emitting after Close
// fails with ErrClosed.
func (e *Emitter[V]) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.closeTimeout)
	defer cancel()
	err := e.Flush(ctx)
	// Closing the client fails what it still holds, with ErrClosed. With
	// the broker gone it can take a second more (franz-go gives its last
	// metrics push that long), so it finishes in the background once the
	// bound has passed.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		e.cl.Close()
	}()
	select {
	case <-closed:
	case <-ctx.Done():
	}
	return err
}

func (e *Emitter[V]) record(partition int32, key string, v V, headers []Header) (*kgo.Record, error) {
	b, err := e.codec.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("emitter %s: encode: %w", e.topic, err)
	}
	r := &kgo.Record{Topic: e.topic, Key: []byte(key), Value: b, Partition: partition}
	for _, h := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return r, nil
}

func (e *Emitter[V]) produceSync(ctx context.Context, r *kgo.Record) error {
	// Counted in flight so that Close waits for it.
	finish, ok := e.track()
	if !ok {
		return ErrClosed
	}
	defer finish()
	return e.wrap(e.cl.ProduceSync(ctx, r).FirstErr())
}

// wrap names the emitter in a produce error; a record the closing client
// gave up on reports ErrClosed.
func (e *Emitter[V]) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("emitter %s: closed before the record was acknowledged: %w", e.topic, ErrClosed)
	default:
		return fmt.Errorf("emitter %s: %w", e.topic, err)
	}
}

// callbackQueue runs functions one at a time, in order, on its own
// goroutine. Pushing never blocks, so the client's promises, which push,
// return at once.
type callbackQueue struct {
	mu      sync.Mutex
	queue   []func()
	running bool // a goroutine is draining the queue
}

func newCallbackQueue() *callbackQueue { return &callbackQueue{} }

// push queues fn, starting a goroutine to run the queue if none is
// running; the goroutine ends when the queue is empty.
func (q *callbackQueue) push(fn func()) {
	q.mu.Lock()
	q.queue = append(q.queue, fn)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.drain()
	}
}

func (q *callbackQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		fn := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		fn()
	}
}
