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

// deliveryTimeout returns the DeliveryTimeout option, or its default: 30s at
// least once, the transaction timeout exactly once.
func (p *Processor[V]) deliveryTimeout() (time.Duration, error) {
	if p.cfg.deliveryTimeout != 0 {
		return p.cfg.deliveryTimeout, nil
	}
	if !p.exactlyOnce() {
		return 30 * time.Second, nil
	}
	// The transaction timeout is sluice's default unless KafkaOptions set
	// another; a client that is never used tells which.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.TransactionTimeout(defaultTransactionTimeout)}, p.cfg.client.kgoOpts()...)...)
	if err != nil {
		return 0, fmt.Errorf("group %s: client: %w", p.g.name, err)
	}
	defer cl.Close()
	txn, _ := cl.OptValue(kgo.TransactionTimeout).(time.Duration)
	return txn, nil
}

// setAckTimeout sets how long tasks wait for acknowledgements, from the
// client's settings, in which KafkaOptions may have changed the delivery
// timeout. Exactly once, a delivery timeout longer than the transaction
// timeout is refused: the broker aborts a transaction at its timeout, so a
// record still being retried then can no longer commit.
func (p *Processor[V]) setAckTimeout() error {
	delivery, _ := p.cl.OptValue(kgo.RecordDeliveryTimeout).(time.Duration)
	request, _ := p.cl.OptValue(kgo.ProduceRequestTimeout).(time.Duration)
	if delivery <= 0 {
		return fmt.Errorf("group %s: the delivery timeout must be set: without one a write that never succeeds blocks the processor for ever", p.g.name)
	}
	if txn, _ := p.cl.OptValue(kgo.TransactionTimeout).(time.Duration); p.exactlyOnce() && delivery > txn {
		return fmt.Errorf("group %s: DeliveryTimeout %v exceeds the transaction timeout %v: shorten it or lengthen the transaction timeout", p.g.name, delivery, txn)
	}
	p.ackTimeout = delivery + request
	return nil
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
	t.cl.Produce(t.p.writeCtx, r, t.promise)
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
	timer := time.NewTimer(t.p.ackTimeout)
	defer timer.Stop()
	var why string
	select {
	case <-acked:
		return nil
	case <-timer.C:
		why = fmt.Sprintf("not acknowledged within %v (the delivery timeout and the produce request timeout)", t.p.ackTimeout)
	case <-t.p.writeCtx.Done():
		why = "abandoned by the stop"
	}
	topics := make([]string, len(t.writing))
	for i, topic := range t.writing {
		topics[i] = topic
		if topic == t.table {
			topics[i] = fmt.Sprintf("%s/%d", topic, t.partition)
		}
	}
	t.unacked = fmt.Errorf("group %s: partition %d: writes to %s %s", t.p.g.name, t.partition, strings.Join(topics, ", "), why)
	return t.unacked
}
