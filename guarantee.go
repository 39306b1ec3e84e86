package sluice

// The delivery guarantee as a strategy: Run chooses one, at-least-once
// (alo.go) or exactly-once (eos.go), and the processor, its poll loop, its
// rebalance callbacks and its tasks call it where the guarantees differ.
// Nothing else asks which guarantee a processor runs with.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errStoppedStarting is what deliveryStrategy.open returns when the context
// of Run was done before the client was ready: Run then returns nil.
var errStoppedStarting = errors.New("stopped while starting")

// A deliveryStrategy carries out a processor's delivery guarantee during one
// Run. Its methods are called by the poll loop's goroutine, except where
// they say otherwise.
type deliveryStrategy[V any] interface {
	// deliveryTimeout returns the delivery timeout to give the client:
	// set, the one the options set (0 if none), or a default, given the
	// transaction timeout txn the client would use. Called by Run.
	deliveryTimeout(set, txn time.Duration) (time.Duration, error)
	// clientOpts adds what the guarantee needs to the options of the
	// group's client. Called by Run.
	clientOpts(opts []kgo.Opt) []kgo.Opt
	// open makes the group's client from opts and readies it for its
	// first writes. Called by Run.
	open(ctx context.Context, opts []kgo.Opt) (*kgo.Client, error)

	// beginPoll returns the context of the next poll and the function to
	// call when it returned.
	beginPoll(ctx context.Context) (context.Context, func())
	// fetched is called with what a poll returned, before it is handed
	// out; it reports whether to hand it out.
	fetched(fetches kgo.Fetches) (handOut bool, err error)
	// hand is called before the records of fp are handed to t, nil when
	// no task owns their partition; it reports whether they go to t.
	hand(t *task[V], fp kgo.FetchTopicPartition) bool
	// polled is called once what a poll returned is with its tasks.
	polled() error
	// pollStopped is called when the poll loop ends because Run's context
	// is done.
	pollStopped()
	// allowRebalance lets the rebalance callbacks that wait for the poll
	// loop go ahead.
	allowRebalance()
	// tickWrote is called when ticks of tasks (tick.go) wrote records
	// since the last call.
	tickWrote()

	// written is called by a task, in its goroutine, once a batch it
	// wrote is acknowledged; marks are the input offsets the batch
	// completes.
	written(t *task[V], marks map[string]kgo.EpochOffset) error

	// assigned is called by the rebalance callback that assigns
	// partitions, before it starts their tasks.
	assigned()
	// release stops the tasks of revoked (commit set) or lost partitions
	// and lets their partitions go. Called by the rebalance callbacks.
	release(ctx context.Context, cl *kgo.Client, parts map[string][]int32, stopping []*task[V], commit bool)
	// partitionsLeft is called by the rebalance callbacks after partitions
	// were revoked or lost.
	partitionsLeft()

	// finish writes or drops what the tasks hold and stops them, when Run
	// stops, before the client leaves the group.
	finish()

	// addState reports the guarantee's own metrics series from s. Called
	// by the metrics' collector.
	addState(add func(d *stateDesc, v float64, labels ...string), s Stats)
}

// newStrategy returns the strategy of p's delivery guarantee.
func newStrategy[V any](p *Processor[V]) deliveryStrategy[V] {
	if p.cfg.guarantee == ExactlyOnce {
		return newEOS(p)
	}
	return &alo[V]{p: p}
}
