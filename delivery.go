package sluice

// How a processor's writes to Kafka are bounded. The client retries a write
// until the delivery timeout passes, and for ever one it sent to a broker
// that never answered; a task waits for its records no longer than the
// delivery and produce request timeouts together, so that a write that
// cannot succeed stops the processor instead of blocking it.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// writeTimeouts returns the delivery timeout to give the client, the
// DeliveryTimeout option or its default (30s at least once, the transaction
// timeout exactly once), and sets how long tasks wait for acknowledgements.
// KafkaOptions may change the transaction, delivery and produce request
// timeouts; a client that is never used tells what they come to. Exactly
// once, a delivery timeout longer than the transaction timeout is refused:
// the broker aborts a transaction at its timeout, so a record still being
// retried then can no longer commit.
func (p *Processor[V]) writeTimeouts() (time.Duration, error) {
	opts := []kgo.Opt{kgo.TransactionTimeout(defaultTransactionTimeout)}
	if p.cfg.deliveryTimeout != 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(p.cfg.deliveryTimeout))
	}
	cl, err := kgo.NewClient(append(opts, p.cfg.client.kgoOpts()...)...)
	if err != nil {
		return 0, fmt.Errorf("group %s: client: %w", p.g.name, err)
	}
	defer cl.Close()
	txn, _ := cl.OptValue(kgo.TransactionTimeout).(time.Duration)
	delivery, _ := cl.OptValue(kgo.RecordDeliveryTimeout).(time.Duration)
	request, _ := cl.OptValue(kgo.ProduceRequestTimeout).(time.Duration)
	if delivery, err = p.strategy.deliveryTimeout(delivery, txn); err != nil {
		return 0, err
	}
	p.ackTimeout = delivery + request
	return delivery, nil
}

// produce hands r to the client at once; flush waits for the outcome.
func (t *task[V]) produce(r *kgo.Record) {
	if r.Topic != t.lastTopic {
		if !slices.Contains(t.writing, r.Topic) {
			t.writing = append(t.writing, r.Topic)
		}
		t.lastTopic = r.Topic
	}
	t.inflight.Add(1)
	t.cl.Produce(t.h.writeCtx, r, t.promise)
}

// produceEffects produces the records the engine's processed records asked
// to write, and lets go of them: the engine reuses its slice of them, which
// would otherwise keep them alive after Kafka acknowledged them, until
// records of a later call overwrote them, and with them the fetched input
// batches their keys share bytes with (see emitEncoded).
func (t *task[V]) produceEffects() {
	effects := t.e.effects()
	for _, r := range effects {
		t.produce(r)
	}
	clear(effects)
}

// onProduced is the promise of every record the task produces.
func (t *task[V]) onProduced(r *kgo.Record, err error) {
	if err != nil {
		t.produceErr.CompareAndSwap(nil, &produceError{topic: r.Topic, partition: r.Partition, err: err})
	} else if r.Topic == t.table {
		for end := t.changelogEnd.Load(); r.Offset+1 > end; end = t.changelogEnd.Load() {
			if t.changelogEnd.CompareAndSwap(end, r.Offset+1) {
				break
			}
		}
	}
	t.inflight.Done()
}

type produceError struct {
	topic     string
	partition int32 // -1 if the record failed before it was given one
	err       error
}

func (e *produceError) where() string {
	if e.partition < 0 {
		return e.topic
	}
	return fmt.Sprintf("%s/%d", e.topic, e.partition)
}

// waitAcknowledged waits until Kafka has acknowledged, or failed, every
// record the task produced (produceErr holds the first failure). The client
// fails a record at the delivery timeout, but not one it sent to a broker
// that never answered, which it retries for as long as it takes; so the
// wait gives up itself once the delivery and produce request timeouts have
// passed, or when the processor abandons its writes, and then returns an
// error naming the topics written. Records are still in flight after that:
// the task must not produce again.
func (t *task[V]) waitAcknowledged() error {
	if t.unacked != nil {
		return t.unacked
	}
	defer func() {
		clear(t.writing)
		t.writing, t.lastTopic = t.writing[:0], ""
	}()
	acked := make(chan struct{})
	go func() {
		t.inflight.Wait()
		close(acked)
	}()
	timer := time.NewTimer(t.h.ackTimeout)
	defer timer.Stop()
	var why string
	select {
	case <-acked:
		return nil
	case <-timer.C:
		why = fmt.Sprintf("not acknowledged within %v (the delivery timeout and the produce request timeout)", t.h.ackTimeout)
	case <-t.h.writeCtx.Done():
		why = "abandoned by the stop"
	}
	topics := make([]string, len(t.writing))
	for i, topic := range t.writing {
		topics[i] = topic
		if topic == t.table {
			topics[i] = fmt.Sprintf("%s/%d", topic, t.partition)
		}
	}
	t.unacked = fmt.Errorf("group %s: partition %d: writes to %s %s", t.h.group, t.partition, strings.Join(topics, ", "), why)
	return t.unacked
}
