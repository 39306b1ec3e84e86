package sluice

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
	client    clientConfig
	threshold int
	interval  time.Duration
}

type emitterOpt func(*emitterConfig)

func (o emitterOpt) applyEmitter(c *emitterConfig) { o(c) }

// DeliveryThreshold makes EmitAsync hold records in the emitter until n are
// waiting, then hand them to the Kafka client together. Default: 0, every
// record is handed over at once (the client still batches on the wire).
func DeliveryThreshold(n int) EmitterOpt {
	return emitterOpt(func(c *emitterConfig) { c.threshold = n })
}

// DeliveryInterval makes EmitAsync hand over the records it holds at least
// this often, however few they are. Default: 0, no timer; with a
// DeliveryThreshold and no interval, records wait until the threshold, Flush
// or Close.
func DeliveryInterval(d time.Duration) EmitterOpt {
	return emitterOpt(func(c *emitterConfig) { c.interval = d })
}

// Emitter writes typed records to one topic. Keys are placed on partitions
// with the emitter's Hasher (Partitioning, default Murmur2, as the Java
// client and librdkafka's murmur2 partitioner do), unless a partition is
// given. An Emitter is safe for
// concurrent use.
type Emitter[V any] struct {
	topic      string
	codec      codec.Codec[V]
	cfg        emitterConfig
	cl         *kgo.Client
	partitions int32
	outcomes   *emitterCounts

	mu     sync.Mutex
	held   []heldRecord
	timer  *time.Timer
	closed bool

	// Records in flight are counted per epoch; Flush seals the current
	// epoch and waits for it and every earlier one, never for records
	// emitted after it was called.
	pmu      sync.Mutex
	current  *epoch
	unsealed []*epoch // sealed epochs with records still in flight
}

type epoch struct {
	inFlight int
	sealed   bool
	done     chan struct{}
}

type heldRecord struct {
	r    *kgo.Record
	done func(error)
}

// NewEmitter connects an emitter for topic, creating the topic with the
// TopicDefaults if it does not exist.
func NewEmitter[V any](topic string, c codec.Codec[V], opts ...EmitterOpt) (*Emitter[V], error) {
	if topic == "" {
		return nil, errors.New("emitter: topic name is empty")
	}
	if c == nil {
		return nil, fmt.Errorf("emitter %s: codec is nil", topic)
	}
	cfg := emitterConfig{client: defaultClientConfig()}
	for _, o := range opts {
		o.applyEmitter(&cfg)
	}
	if cfg.threshold < 0 || cfg.interval < 0 {
		return nil, fmt.Errorf("emitter %s: DeliveryThreshold and DeliveryInterval must not be negative", topic)
	}
	outcomes, err := newEmitterCounts(topic, &cfg.client)
	if err != nil {
		return nil, fmt.Errorf("emitter %s: %w", topic, err)
	}
	cl, err := kgo.NewClient(cfg.client.kgoOpts(kgo.RecordPartitioner(cfg.client.partitioner()), kgo.WithHooks(outcomes))...)
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
	return &Emitter[V]{topic: topic, codec: c, cfg: cfg, cl: cl, partitions: counts[topic], current: newEpoch(), outcomes: outcomes}, nil
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

// EmitAsync writes v under key without waiting, and calls done (if not nil)
// with the outcome once Kafka acknowledged or rejected the record. Records
// are held according to DeliveryThreshold and DeliveryInterval. Records
// written with EmitAsync keep their order per key among themselves.
func (e *Emitter[V]) EmitAsync(key string, v V, done func(error), headers ...Header) {
	r, err := e.record(-1, key, v, headers)
	if err != nil {
		if done != nil {
			done(err)
		}
		return
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	finish := e.track()
	complete := func(err error) {
		if done != nil {
			done(err)
		}
		finish()
	}
	if e.cfg.threshold == 0 && e.cfg.interval == 0 {
		e.mu.Unlock()
		e.produce(r, complete)
		return
	}
	e.held = append(e.held, heldRecord{r: r, done: complete})
	if e.cfg.threshold > 0 && len(e.held) >= e.cfg.threshold {
		e.handOverHeld()
	} else if e.cfg.interval > 0 && e.timer == nil {
		e.timer = time.AfterFunc(e.cfg.interval, e.deliverHeld)
	}
	e.mu.Unlock()
}

// Flush hands over every held record and waits until every record emitted
// so far is acknowledged or failed.
func (e *Emitter[V]) Flush(ctx context.Context) error {
	e.deliverHeld()
	e.pmu.Lock()
	sealed := e.current
	sealed.sealed = true
	if sealed.inFlight == 0 {
		close(sealed.done)
	} else {
		e.unsealed = append(e.unsealed, sealed)
	}
	e.current = newEpoch()
	waits := append([]*epoch(nil), e.unsealed...)
	e.pmu.Unlock()
	for _, ep := range waits {
		select {
		case <-ep.done:
		case <-ctx.Done():
			return fmt.Errorf("emitter %s: flush: %w", e.topic, ctx.Err())
		}
	}
	return nil
}

func newEpoch() *epoch { return &epoch{done: make(chan struct{})} }

// track counts a record in flight in the current epoch and returns the
// function that counts it out.
func (e *Emitter[V]) track() func() {
	e.pmu.Lock()
	ep := e.current
	ep.inFlight++
	e.pmu.Unlock()
	return func() {
		e.pmu.Lock()
		defer e.pmu.Unlock()
		ep.inFlight--
		if ep.inFlight == 0 && ep.sealed {
			close(ep.done)
			e.unsealed = slices.DeleteFunc(e.unsealed, func(x *epoch) bool { return x == ep })
		}
	}
}

// Close flushes and disconnects. Emitting after Close fails with ErrClosed.
func (e *Emitter[V]) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.Flush(ctx)
	e.cl.Close()
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
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	// Counted in flight so that Close waits for it.
	finish := e.track()
	e.mu.Unlock()
	defer finish()
	if err := e.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("emitter %s: %w", e.topic, err)
	}
	return nil
}

// produce hands r to the client; done is called with the outcome.
func (e *Emitter[V]) produce(r *kgo.Record, done func(error)) {
	e.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
		if err != nil {
			err = fmt.Errorf("emitter %s: %w", e.topic, err)
		}
		done(err)
	})
}

// handOverHeld gives the held records to the client in order and stops the
// timer. e.mu must be held, so that batches cannot overtake each other.
func (e *Emitter[V]) handOverHeld() {
	for _, h := range e.held {
		e.produce(h.r, h.done)
	}
	e.held = nil
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

func (e *Emitter[V]) deliverHeld() {
	e.mu.Lock()
	e.handOverHeld()
	e.mu.Unlock()
}
