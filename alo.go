package sluice

// At least once: a task applies a written batch's rows to its store and
// marks its input offsets once Kafka acknowledged the batch (while the task
// goes on with the next records, see pipeline.go), with those of the
// batches acknowledged within applyDelay (applydefer.go), and the client
// commits marked offsets every CommitInterval, on revoke, and when Run
// stops; the processor commits them at once when its input went idle
// (idlecommit.go). A rebalance may go
// ahead once a poll's records are with their tasks: a revoked task writes
// what it has before its partition moves.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// alo is the at-least-once strategy.
type alo[V any] struct {
	p *Processor[V]
}

func (a *alo[V]) deliveryTimeout(set, _ time.Duration) (time.Duration, error) {
	if set == 0 {
		// Neither the option nor KafkaOptions set one.
		return 30 * time.Second, nil
	}
	return set, nil
}

func (a *alo[V]) clientOpts(opts []kgo.Opt) []kgo.Opt {
	if book := a.p.host.ccBook; book != nil {
		// The client's periodic commits run on its own context: the
		// hook that sets the metadata of concurrent inputs rides on it.
		opts = append(opts, kgo.WithContext(book.commitCtx(context.Background())))
	}
	// The commit callback keeps the last failed commit.
	return append(opts,
		kgo.AutoCommitCallback(a.p.metrics.committed),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(a.p.cfg.commitInterval),
	)
}

func (a *alo[V]) open(_ context.Context, opts []kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(opts...)
}

func (a *alo[V]) beginPoll(ctx context.Context) (context.Context, func()) {
	return context.WithCancel(ctx)
}

func (a *alo[V]) fetched(kgo.Fetches) (bool, error) { return true, nil }

func (a *alo[V]) hand(t *task[V], _ kgo.FetchTopicPartition) bool { return t != nil }

// polled lets a rebalance go ahead once the records are with their tasks:
// a revoked task writes what it has.
func (a *alo[V]) polled() error {
	a.allowRebalance()
	return nil
}

func (a *alo[V]) pollStopped() { a.allowRebalance() }

func (a *alo[V]) allowRebalance() { a.p.cl.AllowRebalance() }

// tickWrote has nothing to do: a tick's batch is committed like a poll's.
func (a *alo[V]) tickWrote() {}

// written applies the batch's rows to the store and marks its input
// offsets for commit, or has the task apply them with the batches that
// follow within applyDelay (applydefer.go).
func (a *alo[V]) written(t *task[V], marks map[string]kgo.EpochOffset) error {
	return t.deferApply(marks, a.applyDelay())
}

// applyDelay is how long the rows of a written batch may wait to be applied
// with the next batches': a quarter of CommitInterval, so that a commit
// carries offsets at most that much older, and at most maxApplyDelay.
func (a *alo[V]) applyDelay() time.Duration {
	return min(maxApplyDelay, a.p.cfg.commitInterval/4)
}

func (a *alo[V]) assigned() {}

// release has the tasks write and mark what they finished and, on a revoke,
// commits it before the partitions can move.
func (a *alo[V]) release(ctx context.Context, cl *kgo.Client, parts map[string][]int32, stopping []*task[V], commit bool) {
	p := a.p
	p.stopTasks(stopping, commit)
	if commit {
		err := cl.CommitMarkedOffsets(p.host.ccBook.commitCtx(ctx))
		if err == nil {
			err = p.host.ccBook.commitStale(ctx, cl)
		}
		if err != nil {
			p.logger.Warn("commit on revoke failed", "err", err)
			p.metrics.setError(-1, "commit on revoke", err)
		}
	}
	if p.host.ccBook != nil {
		p.host.ccBook.drop(parts)
	}
	// Pauses outlive assignments; clear them so a later assignment starts
	// from a known state.
	cl.ResumeFetchPartitions(parts)
}

func (a *alo[V]) partitionsLeft() {}

// finish has every task write and mark what it processed, and commits.
func (a *alo[V]) finish() {
	p := a.p
	p.stopTasks(p.allTasks(), true)
	cctx, ccancel := context.WithTimeout(p.writeCtx, 10*time.Second)
	cerr := p.cl.CommitMarkedOffsets(p.host.ccBook.commitCtx(cctx))
	if cerr == nil {
		cerr = p.host.ccBook.commitStale(cctx, p.cl)
	}
	if cerr != nil {
		p.logger.Warn("final commit failed", "err", cerr)
		p.metrics.setError(-1, "final commit", cerr)
	}
	ccancel()
}

func (a *alo[V]) addState(func(d *stateDesc, v float64, labels ...string), Stats) {}
