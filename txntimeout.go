package sluice

// How exactly-once transactions are kept from the broker's transaction
// timeout (see eos.go).

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// commitInterval is how long the poll loop lets a transaction with work run
// before it ends it: CommitInterval, but no more than half the transaction
// timeout, so that it ends well before the broker would abort it.
func (e *eos[V]) commitInterval() time.Duration {
	return min(e.p.cfg.commitInterval, e.txnTimeout()/2)
}

// endBy is when the open transaction must have ended: three quarters of
// the transaction timeout after it began, leaving a quarter of it for the
// clocks and the requests to differ. The broker counts from the
// transaction's first write, which comes after txnStart. A transaction
// still open then is aborted by the processor: a commit that comes after
// the broker's abort makes the producer unusable, an abort does not.
func (e *eos[V]) endBy() time.Time {
	start := e.txnStart
	if !e.txnHasWork {
		// Nothing was written in it.
		start = time.Now()
	}
	return start.Add(e.txnTimeout() * 3 / 4)
}

// timedOutHint explains a write refused for an old producer epoch: exactly
// once, the broker aborted the transaction at the transaction timeout (and
// took a new epoch) while a task still wrote into it, which the client
// cannot recover from.
func timedOutHint(err error) string {
	if !errors.Is(err, kerr.InvalidProducerEpoch) {
		return ""
	}
	return " (the broker aborted the transaction at the transaction timeout: lengthen it with KafkaOptions(kgo.TransactionTimeout(...)) or shorten what held the transaction open, such as a slow handler)"
}
