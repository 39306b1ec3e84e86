package sluice

// How a processor's writes to Kafka are bounded. The client retries a write
// until the delivery timeout passes, and for ever one it sent to a broker
// that never answered; a task waits for its records no longer than the
// delivery and produce request timeouts together, so that a write that
// cannot succeed stops the processor instead of blocking it.

import (
	"fmt"
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
