package sluice

// Exactly once: the changelog records, outputs, loopbacks and input offsets
// of the records handed out since the last commit go into one Kafka
// transaction, which the poll loop ends every CommitInterval; a task applies
// a transaction's rows to its store only once it committed, while the poll
// loop goes on with the next. How the transactions meet group rebalances is
// in txnrebalance.go.
//
// The broker aborts a transaction still open at the transaction timeout,
// and the client cannot go on after that: the end that comes after it fails
// with INVALID_TXN_STATE (or a write with INVALID_PRODUCER_EPOCH), which
// leaves the producer unusable. So the processor never lets a transaction
// reach it: the poll loop ends one by half the timeout at the latest (see
// commitInterval and joinWait), and one that is still open at three
// quarters of it (a task was slow to prepare, the commit waited for a
// rebalance) is aborted by the processor itself (see endBy), which the
// client recovers from: its records are processed again, as after any
// failed end.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultTransactionTimeout is how long the broker lets a transaction stay
// open, exactly once, unless KafkaOptions set kgo.TransactionTimeout. A
// processor that dies leaves its transaction open, and read_committed
// readers of its topics, the next owner of its partitions among them, wait
// until the broker aborts it: ten seconds, as in Kafka Streams, instead of
// kgo's 40.
const defaultTransactionTimeout = 10 * time.Second

// eos is the exactly-once strategy: the state of the transaction session of
// one Run.
type eos[V any] struct {
	p   *Processor[V]
	txn *kgo.GroupTransactSession
	// Records were handed out since the last commit, when the first of
	// them was, and how many to each task. Used by the poll loop, and
	// after it by Run.
	txnHasWork bool
	txnStart   time.Time
	txnHanded  map[*task[V]]int64
	// Partitions were revoked or lost since the transaction began, so it
	// must end soon.
	endSoon atomic.Bool
	// Closed once the tasks applied the last committed transaction to
	// their stores; nil before the first commit. Guarded by p.mu: the
	// poll loop sets it, the rebalance callbacks wait for it.
	applied chan struct{}

	// Guarded by p.mu. wakePoll ends the poll in progress, if any. A
	// rebalance callback waits for the poll loop to let it go ahead, and
	// waiting is closed (see rebalanceBlocked); the poll loop is ending a
	// transaction with rebalances held back (see endHeld). The client
	// asked to join the group again and the new session has not begun,
	// and joined is closed when it has (see joinWatch).
	wakePoll         context.CancelFunc
	rebalanceWaiting bool
	waiting          chan struct{}
	endingHeld       bool
	joining          bool
	joined           chan struct{}

	// The transaction timeout the client asks the broker for, set by open.
	// Guarded by endMu: the client wrote the EndTxn request of the
	// transaction that is ending (see endContext).
	timeout time.Duration
	endMu   sync.Mutex
	endSent bool

	// The IDs of the topics of the offset commits, for the partitions of
	// concurrent inputs the client leaves out (eosconcurrent.go).
	topicIDs map[string][16]byte
}

func newEOS[V any](p *Processor[V]) *eos[V] {
	return &eos[V]{p: p, txnStart: time.Now(), txnHanded: make(map[*task[V]]int64), topicIDs: make(map[string][16]byte)}
}

// deliveryTimeout refuses a delivery timeout longer than the transaction
// timeout: the broker aborts a transaction at its timeout, so a record still
// being retried then can no longer commit.
func (e *eos[V]) deliveryTimeout(set, txn time.Duration) (time.Duration, error) {
	delivery := set
	if delivery == 0 {
		// Neither the option nor KafkaOptions set one.
		delivery = txn
	}
	if delivery > txn {
		return 0, fmt.Errorf("group %s: DeliveryTimeout %v exceeds the transaction timeout %v: shorten it or lengthen the transaction timeout", e.p.g.name, delivery, txn)
	}
	return delivery, nil
}

func (e *eos[V]) clientOpts(opts []kgo.Opt) []kgo.Opt {
	// Given first, so that KafkaOptions can override it.
	opts = append([]kgo.Opt{kgo.TransactionTimeout(defaultTransactionTimeout)}, opts...)
	opts = append(opts, kgo.TransactionalID(transactionalID(e.p.g.name, e.p.cfg.instanceID)))
	return append(opts, kgo.OnPartitionsCallbackBlocked(e.rebalanceBlocked), kgo.WithHooks(joinWatch{e.startJoining}, endTxnWatch{e.endTxnWritten}))
}

// open makes the transaction session and begins its first transaction.
func (e *eos[V]) open(ctx context.Context, opts []kgo.Opt) (*kgo.Client, error) {
	var err error
	if e.txn, err = kgo.NewGroupTransactSession(opts...); err != nil {
		return nil, err
	}
	cl := e.txn.Client()
	e.timeout, _ = cl.OptValue(kgo.TransactionTimeout).(time.Duration)
	if err = e.txn.Begin(); err == nil {
		// The client would register its transactional ID only
		// with its first write, after its tasks restored, and
		// a restore waits for the transaction a crashed
		// predecessor with the same ID left open: registering
		// it now fences that transaction, which the broker
		// then aborts at once.
		if _, _, err = cl.ProducerID(ctx); err != nil {
			if ctx.Err() != nil {
				cl.Close()
				return nil, errStoppedStarting
			}
			err = fmt.Errorf("register transactional id: %w", err)
		}
	}
	if err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// beginPoll bounds a poll while the transaction has work: a poll whose
// context is done returns nothing, even what is buffered, so the deadline
// must lie ahead, which polled makes sure of. The poll can be woken (see
// wakeToEnd and rebalanceBlocked).
func (e *eos[V]) beginPoll(ctx context.Context) (context.Context, func()) {
	p := e.p
	var pollCtx context.Context
	var cancel context.CancelFunc
	if e.txnHasWork {
		due := e.txnStart.Add(e.commitInterval())
		if e.isJoining() {
			due = e.txnStart.Add(e.joinWait())
		}
		pollCtx, cancel = context.WithDeadline(ctx, due)
	} else {
		pollCtx, cancel = context.WithCancel(ctx)
	}
	p.mu.Lock()
	e.wakePoll = cancel
	if e.rebalanceWaiting || e.endSoon.Load() {
		// Woken before the poll began.
		cancel()
	}
	p.mu.Unlock()
	return pollCtx, func() {
		p.mu.Lock()
		e.wakePoll = nil
		p.mu.Unlock()
		cancel()
	}
}

// tickWrote gives the open transaction work, so that it commits what the
// ticks wrote within CommitInterval.
func (e *eos[V]) tickWrote() {
	if !e.txnHasWork {
		e.txnHasWork, e.txnStart = true, time.Now()
	}
}

func (e *eos[V]) fetched(fetches kgo.Fetches) (bool, error) {
	if e.endSoon.Load() && fetches.NumRecords() > 0 {
		// Partitions were revoked or lost while this poll waited
		// for the callback: the client's session aborts the open
		// transaction and sets the consumer back to the committed
		// offsets, so these records are fetched again after it.
		// Rather than have them processed in a transaction that
		// aborts, end it first, and hand them to no one. The abort
		// is explicit: a commit would commit their offsets.
		e.endSoon.Store(false)
		if err := e.endHeld(kgo.TryAbort); err != nil {
			return false, err
		}
		e.allowRebalance()
		return false, nil
	}
	return true, nil
}

// hand counts the records handed to each task in the transaction. The
// client counts polled records as consumed, so records with no task to
// process them fail the processor: the transaction would commit their
// offsets.
func (e *eos[V]) hand(t *task[V], fp kgo.FetchTopicPartition) bool {
	if t == nil {
		e.p.fail(fmt.Errorf("group %s: records of %s/%d arrived with no task to process them", e.p.g.name, fp.Topic, fp.Partition))
		return false
	}
	if !e.txnHasWork {
		e.txnHasWork, e.txnStart = true, time.Now()
	}
	e.txnHanded[t] += int64(len(fp.Records))
	return true
}

// polled ends the transaction every CommitInterval, and at once when a
// rebalance waits or took partitions away, and lets rebalances go ahead only
// when no work would be aborted.
func (e *eos[V]) polled() error {
	p := e.p
	due := e.txnHasWork && time.Since(e.txnStart) >= e.commitInterval()
	if due && e.isJoining() && time.Since(e.txnStart) < e.joinWait() {
		// While the member joins the group again, ending the
		// transaction would abort it: the client would commit its
		// offsets with the generation that the join ends. It ends
		// when the new session's first callback waits (see
		// joinWatch).
		due = false
	}
	// After a rebalance took partitions away, the transaction
	// ends at once, even with no work in it: until it ends,
	// the client does not report further revocations (see
	// revoked).
	if e.endSoon.Swap(false) {
		due = true
	}
	// A rebalance waits for the records in hand.
	if e.txnHasWork && e.rebalanceIsWaiting() {
		due = true
	}
	if due && p.firstError() == nil {
		if err := e.endHeld(kgo.TryCommit); err != nil {
			return err
		}
	}
	if !e.txnHasWork {
		e.allowRebalance()
	}
	e.concurrentWork()
	return nil
}

// pollStopped keeps rebalances held back until the last transaction ended
// (endLastTransaction).
func (e *eos[V]) pollStopped() {}

// written leaves the rows and the input offsets of the batch to the
// transaction: the rows go to the store once it committed (see task.step),
// and it commits the offsets of every record polled.
func (e *eos[V]) written(*task[V], map[string]kgo.EpochOffset) error { return nil }

func (e *eos[V]) assigned() {
	e.p.mu.Lock()
	e.joinEndedLocked()
	e.p.mu.Unlock()
}

// release stops the tasks without their work: it is committed (see poll),
// or, after the member was dropped from the group, in the open transaction,
// which now aborts: the next owner processes their records again.
func (e *eos[V]) release(_ context.Context, cl *kgo.Client, parts map[string][]int32, stopping []*task[V], _ bool) {
	e.awaitApplied()
	e.p.stopTasks(stopping, false)
	cl.ResumeFetchPartitions(parts)
}

// partitionsLeft wakes the poll loop to end the transaction, which the
// client's session aborts: see Processor.revoked.
func (e *eos[V]) partitionsLeft() { e.wakeToEnd() }

func (e *eos[V]) wakeToEnd() {
	p := e.p
	e.endSoon.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.wakePoll != nil {
		e.wakePoll()
	}
}

// finish ends the last transaction and stops the tasks, which hold nothing
// it did not commit or abort.
func (e *eos[V]) finish() {
	e.endLastTransaction()
	e.awaitApplied()
	e.p.stopTasks(e.p.allTasks(), false)
}

func (e *eos[V]) addState(add func(d *stateDesc, v float64, labels ...string), s Stats) {
	add(descTransactions, float64(s.Commits), s.Group, "committed")
	add(descTransactions, float64(s.Aborts), s.Group, "aborted")
}

// endTransaction ends the open transaction and begins the next: every
// active task writes its batch into it, the transaction commits (if try is
// TryCommit) with the offsets of every record polled (all of them processed
// by then), and the tasks apply its row changes to their stores (in the
// background, see applyInBackground), or forget them if it aborted.
func (e *eos[V]) endTransaction(try kgo.TransactionEndTry) error {
	p := e.p
	tasks := p.activeTasks()
	if err := stepAll(tasks, prepare); err != nil {
		return err
	}
	// The records are acknowledged by now (prepare waited for them); what
	// is left is a few requests, and the client's wait for a heartbeat
	// before it ends a transaction that committed offsets, which lasts
	// as long as a join of the group. All of it must be over before the
	// broker's timeout (see endBy).
	by := e.endBy()
	if try == kgo.TryCommit && !time.Now().Before(by) {
		p.logger.Warn("transaction open too close to the transaction timeout; aborting it", "open", time.Since(e.txnStart).Round(time.Millisecond), "timeout", e.txnTimeout())
		try = kgo.TryAbort
	}
	ctx, cancel := context.WithTimeout(p.writeCtx, 20*time.Second)
	defer cancel()
	expired := func() bool { return false }
	if try == kgo.TryCommit {
		var stop func()
		ctx, expired, stop = e.endContext(ctx, by)
		defer stop()
	}
	committedTxn, err := e.txn.End(e.concurrentCommit(ctx, tasks), try)
	if err != nil && expired() {
		err = fmt.Errorf("transaction not ended within three quarters of the transaction timeout %v: %w", e.txnTimeout(), err)
	}
	outcome := aborted
	if committedTxn {
		outcome = committed
	} else {
		p.aborts.Add(1)
		p.logger.Info("transaction aborted; its records are processed again", "redone", e.countRedone(), "err", err)
		p.metrics.setError(-1, "transaction aborted", err)
	}
	clear(e.txnHanded)
	if err != nil {
		// End can fail before it ends the transaction (records it could
		// not flush); abort what is left of it, so the next can begin.
		actx, acancel := context.WithTimeout(p.writeCtx, 30*time.Second)
		_, aerr := e.txn.End(actx, kgo.TryAbort)
		acancel()
		if aerr != nil {
			return fmt.Errorf("group %s: abort transaction after a failed commit (%v): %w", p.g.name, err, aerr)
		}
	}
	if outcome == committed {
		// The tasks write the committed rows to their stores while the
		// poll loop goes on: each does so before it takes the records
		// handed to it after this step, and before the next
		// transaction's prepare.
		e.applyInBackground(tasks)
	} else if serr := stepAll(tasks, outcome); serr != nil {
		return fmt.Errorf("group %s: end transaction: %w", p.g.name, serr)
	}
	// A failed end (the broker was unreachable, the producer was fenced
	// after a long outage) aborted the transaction: its records are read
	// again. Only a producer that cannot begin the next one is fatal.
	open := time.Since(e.txnStart)
	hadWork := e.txnHasWork
	e.txnHasWork = false
	if committedTxn {
		p.commits.Add(1)
	}
	if err := e.txn.Begin(); err != nil {
		if timeout := e.txnTimeout(); hadWork && open >= timeout {
			// The client cannot take a new producer epoch after the
			// broker's abort; only a new client could.
			return fmt.Errorf("group %s: begin transaction: the broker aborted the last one, open %v, at the transaction timeout %v, "+
				"which a processor cannot recover from: lengthen it (KafkaOptions(kgo.TransactionTimeout(...))) or shorten what held the transaction open (a handler, a restore, a rebalance): %w",
				p.g.name, open.Round(time.Millisecond), timeout, err)
		}
		return fmt.Errorf("group %s: begin transaction: %w", p.g.name, err)
	}
	return nil
}

// endLastTransaction commits the open transaction on a graceful stop, or
// aborts it after a failure, and lets rebalances go ahead.
func (e *eos[V]) endLastTransaction() {
	p := e.p
	defer e.allowRebalance()
	if p.firstError() == nil && e.txnHasWork {
		e.waitJoined()
		if err := e.endHeld(kgo.TryCommit); err != nil {
			p.logger.Warn("final transaction failed", "err", err)
		}
	}
	if e.txnHasWork {
		p.logger.Info("last transaction aborted; its records are processed again", "redone", e.countRedone())
		clear(e.txnHanded)
	}
	ctx, cancel := context.WithTimeout(p.writeCtx, 30*time.Second)
	defer cancel()
	if _, err := e.txn.End(ctx, kgo.TryAbort); err != nil {
		p.logger.Warn("abort of the last transaction failed", "err", err)
	}
	_ = stepAll(p.activeTasks(), aborted)
}

// countRedone adds the records handed out in the transaction that is
// aborting to the counts of redone records, and returns how many they are.
func (e *eos[V]) countRedone() int64 {
	p := e.p
	var n int64
	for t, handed := range e.txnHanded {
		t.redone.Add(handed)
		n += handed
	}
	p.redone.Add(n)
	return n
}

// applyInBackground has every task apply the committed transaction's rows
// to its store: it puts the step in each task's input, behind the records
// handed out before, and returns without waiting for the stores. A task
// that fails to apply them fails the processor; awaitApplied waits for
// all of them.
func (e *eos[V]) applyInBackground(tasks []*task[V]) {
	p := e.p
	steps := make([]*txnStep, len(tasks))
	var sent sync.WaitGroup
	for i, t := range tasks {
		sent.Go(func() { steps[i] = sendStep(t, committed) })
	}
	sent.Wait()
	applied := make(chan struct{})
	p.mu.Lock()
	e.applied = applied
	p.mu.Unlock()
	go func() {
		defer close(applied)
		errs := make([]error, len(tasks))
		for i, t := range tasks {
			errs[i] = awaitStep(t, steps[i])
		}
		if err := errors.Join(errs...); err != nil {
			p.fail(fmt.Errorf("group %s: apply a committed transaction: %w", p.g.name, err))
		}
	}()
}

// awaitApplied waits until the tasks have applied the last committed
// transaction to their stores. A task that stops with the step still in its
// input may never take it, leaving its store behind the changelog (which a
// restore then reads again), so stopping tasks waits for it first.
func (e *eos[V]) awaitApplied() {
	e.p.mu.Lock()
	applied := e.applied
	e.p.mu.Unlock()
	if applied != nil {
		<-applied
	}
}

// sendStep puts a transaction step in t's input, behind what was handed to
// it before, and returns it, or nil if the task has stopped.
func sendStep[V any](t *task[V], kind txnStepKind) *txnStep {
	s := &txnStep{kind: kind, done: make(chan error, 1)}
	select {
	case t.in <- delivery{step: s}:
		return s
	case <-t.done:
		return nil
	}
}

// awaitStep waits for t's answer to s, sent with sendStep.
func awaitStep[V any](t *task[V], s *txnStep) error {
	if s == nil {
		return nil
	}
	select {
	case err := <-s.done:
		return err
	case <-t.done:
		return nil
	}
}

// stepAll runs a transaction step in every task at once and returns the
// first error.
func stepAll[V any](tasks []*task[V], kind txnStepKind) error {
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Go(func() { errs[i] = t.step(kind) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
