package sluice

// How exactly-once transactions are kept from the broker's transaction
// timeout (see eos.go).

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// endContext returns the context of a commit of the open transaction, which
// is done at by, unless the client wrote the transaction's EndTxn request
// by then; expired reports whether by ended it, and stop releases it. Done
// before the EndTxn request, it makes the client abort the transaction (its
// wait for a heartbeat, its flush or its offset commit ends), which the
// client recovers from. Done while the EndTxn request is in flight, it
// would leave the outcome unknown: the commit may have happened, and the
// abort that follows could not undo it, so its records would be processed
// twice. Only the request's write itself is left in between.
func (e *eos[V]) endContext(parent context.Context, by time.Time) (ctx context.Context, expired func() bool, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	e.endMu.Lock()
	e.endSent = false
	e.endMu.Unlock()
	var ended bool
	timer := time.AfterFunc(time.Until(by), func() {
		e.endMu.Lock()
		defer e.endMu.Unlock()
		if !e.endSent {
			ended = true
			cancel()
		}
	})
	expired = func() bool {
		e.endMu.Lock()
		defer e.endMu.Unlock()
		return ended
	}
	return ctx, expired, func() {
		timer.Stop()
		cancel()
	}
}

func (e *eos[V]) endTxnWritten() {
	e.endMu.Lock()
	e.endSent = true
	e.endMu.Unlock()
}

// endTxnWatch is a client hook that tells when the client wrote an EndTxn
// request (see endContext).
type endTxnWatch struct{ written func() }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (w endTxnWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == kmsg.EndTxn.Int16() {
		w.written()
	}
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
