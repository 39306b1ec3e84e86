package sluice

// A Processor runs one group: it joins the group's Kafka consumer group and
// runs a task for each partition number it is assigned.
//
// Invariants:
//   - Rebalance callbacks run only between polls (BlockRebalanceOnPoll), so a
//     task is never handed records of a partition it no longer owns.
//   - A newly assigned partition is paused until its task has restored its
//     table and joined tables; records are fetched only after that.
//   - A revoked task finishes the batch in hand, writes its effects, marks
//     its offsets and stops; the revoke callback then commits before the
//     partition can be assigned elsewhere. Exactly once, the poll loop
//     holds every rebalance callback back until it has committed the
//     records in hand, so a rebalance aborts no work, of the partitions
//     that move or of those that stay.
//   - Offsets are marked only after every effect of the records below them
//     is acknowledged by Kafka, and only marked offsets are ever committed.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
)

// runState is the state of a processor's one Run: its client and transaction
// session, the readers of its tables, and its tasks.
type runState[V any] struct {
	// Set by Run.
	cl  *kgo.Client
	txn *kgo.GroupTransactSession // exactly once only
	// Exactly once: records were handed out since the last commit, and how
	// many to each task. Used by the poll loop, and after it by Run.
	txnHasWork bool
	txnHanded  map[*task[V]]int64
	writeCtx   context.Context // for writes to Kafka; see Run
	// How long a task waits for its records to be acknowledged: the
	// delivery timeout, and the produce request timeout for a request in
	// flight when it passes.
	ackTimeout time.Duration
	ctx        context.Context
	restore    *tableReader
	joins      map[string]*tableReader
	lookups    map[string]*tableView

	mu       sync.Mutex
	tasks    map[int32]*task[V]
	closing  bool               // Run is stopping: no new tasks
	wakePoll context.CancelFunc // ends the poll in progress, if any
	// Exactly once: partitions were revoked or lost since the
	// transaction began, so it must end soon.
	endSoon atomic.Bool
	failed  chan struct{} // closed by the first task error
	err     error

	// Exactly once: a rebalance callback waits for the poll loop to let
	// it go ahead, and waiting is closed (see rebalanceBlocked); the poll
	// loop is ending a transaction with rebalances held back (see
	// endHeld). The client asked to join the group again and the new
	// session has not begun, and joined is closed when it has (see
	// joinWatch). Guarded by mu.
	rebalanceWaiting bool
	waiting          chan struct{}
	endingHeld       bool
	joining          bool
	joined           chan struct{}
}

// Run joins the group and processes records until ctx is done, then stops
// gracefully: every task finishes its batch, writes its effects and commits,
// and the processor leaves the group. It returns nil after a graceful stop,
// or the first error that stopped processing. A Processor runs once; to run
// the group again, make a new Processor.
func (p *Processor[V]) Run(ctx context.Context) (err error) {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("group %s: Run called twice; make a new Processor to run the group again", p.g.name)
	}
	if p.cfg.instanceID != "" {
		release, err := claimInstance(p.g.name, p.cfg.instanceID)
		if err != nil {
			return err
		}
		defer release()
	}
	counts, err := p.ensureTopics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return err
	}
	p.logger.Info("starting", "partitions", counts)

	var bg sync.WaitGroup
	defer bg.Wait() // after cancel, below, has stopped the background work
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.ctx = runCtx
	// Writes to Kafka outlive ctx, so that a stop can finish its work, but
	// not the shutdown timeout after the stop began: when ctx is done, or
	// when processing stops after a failure.
	writeCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	p.writeCtx = writeCtx
	var stopBegan sync.Once
	beginStop := func() {
		stopBegan.Do(func() {
			t := time.AfterFunc(p.cfg.shutdownTimeout, func() {
				p.logger.Error("stop did not finish in time; abandoning unwritten work", "timeout", p.cfg.shutdownTimeout)
				abandon()
			})
			context.AfterFunc(writeCtx, func() { t.Stop() })
		})
	}
	stopTimer := context.AfterFunc(ctx, beginStop)
	defer stopTimer()
	// A failure stops polling at once rather than at the next fetch.
	pollCtx, stopPolling := context.WithCancel(runCtx)
	defer stopPolling()
	go func() {
		select {
		case <-p.failed:
			stopPolling()
		case <-pollCtx.Done():
		}
	}()

	background := func(name string, fn func(context.Context) error) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				p.fail(fmt.Errorf("group %s: %s: %w", p.g.name, name, err))
			}
		}()
	}

	if p.g.Persisted() {
		if p.restore, err = newTableReader(&p.cfg.client, p.logger, p.g.TableTopic()); err != nil {
			return err
		}
		defer p.restore.close()
		background("restore "+p.g.TableTopic(), p.restore.run)
	}
	p.joins = make(map[string]*tableReader)
	for _, j := range p.g.joins {
		r, err := newTableReader(&p.cfg.client, p.logger.With("join", j.topic), j.topic)
		if err != nil {
			return err
		}
		defer r.close()
		p.joins[j.topic] = r
		background("join "+j.topic, r.run)
	}
	p.lookups = make(map[string]*tableView)
	for _, l := range p.g.lookups {
		tv, release := acquireLookup(p.g.name, l.topic, viewConfig{client: p.cfg.client, storage: p.cfg.storage})
		p.lookups[l.topic] = tv
		background("lookup "+l.topic, func(ctx context.Context) error { return holdLookup(ctx, tv, release) })
	}
	for _, tv := range p.lookups {
		if err := tv.waitReady(runCtx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("group %s: lookup %s: %w", p.g.name, tv.topic, err)
		}
	}

	start := kgo.NewOffset().AtStart()
	if p.cfg.startAt == Latest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := p.cfg.client.kgoOpts(
		kgo.ConsumerGroup(p.g.name),
		kgo.ConsumeTopics(p.g.inputTopics()...),
		kgo.Balancers(kafka.CopartitionBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
		kgo.RecordPartitioner(p.cfg.client.partitioner()),
		kgo.ProducerLinger(0),
		// Restored partitions are resumed while a fetch may be waiting on
		// others; a short wait lets the next fetch include them soon.
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(p.cfg.sessionTimeout),
	)
	if p.cfg.instanceID != "" {
		opts = append(opts, kgo.InstanceID(p.cfg.instanceID))
	}
	opts = append(opts, p.metrics.clientOpts(p.exactlyOnce())...)
	delivery, err := p.writeTimeouts()
	if err != nil {
		return err
	}
	// Given first, so that KafkaOptions can override them.
	opts = append([]kgo.Opt{kgo.RecordDeliveryTimeout(delivery)}, opts...)
	if p.exactlyOnce() {
		opts = append([]kgo.Opt{kgo.TransactionTimeout(defaultTransactionTimeout)}, opts...)
		opts = append(opts, kgo.TransactionalID(transactionalID(p.g.name, p.cfg.instanceID)))
		opts = append(opts, kgo.OnPartitionsCallbackBlocked(p.rebalanceBlocked), kgo.WithHooks(joinWatch{p.startJoining}))
		if p.txn, err = kgo.NewGroupTransactSession(opts...); err == nil {
			p.cl = p.txn.Client()
			err = p.txn.Begin()
		}
		if err == nil {
			// The client would register its transactional ID only
			// with its first write, after its tasks restored, and
			// a restore waits for the transaction a crashed
			// predecessor with the same ID left open: registering
			// it now fences that transaction, which the broker
			// then aborts at once.
			if _, _, err = p.cl.ProducerID(runCtx); err != nil {
				if ctx.Err() != nil {
					p.cl.Close()
					return nil
				}
				err = fmt.Errorf("register transactional id: %w", err)
			}
		}
	} else {
		opts = append(opts, kgo.AutoCommitMarks(), kgo.AutoCommitInterval(p.cfg.commitInterval))
		p.cl, err = kgo.NewClient(opts...)
	}
	if err != nil {
		if p.cl != nil {
			p.cl.Close()
		}
		return fmt.Errorf("group %s: client: %w", p.g.name, err)
	}
	background("lag", p.measureLag)
	defer p.attachMetrics()()
	defer func() {
		beginStop()
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		if p.exactlyOnce() {
			p.endLastTransaction()
			p.stopTasks(p.allTasks(), false)
		} else {
			p.stopTasks(p.allTasks(), true)
			cctx, ccancel := context.WithTimeout(p.writeCtx, 10*time.Second)
			if cerr := p.cl.CommitMarkedOffsets(cctx); cerr != nil {
				p.logger.Warn("final commit failed", "err", cerr)
				p.metrics.setError(-1, "final commit", cerr)
			}
			ccancel()
		}
		p.closeClient()
		if err == nil {
			err = p.firstError()
		}
	}()
	return p.poll(pollCtx)
}

// closeClient leaves the group and closes the client, waiting no longer than
// the shutdown timeout: a broker that does not answer must not keep Run
// from returning.
func (p *Processor[V]) closeClient() {
	closed := make(chan struct{})
	go func() {
		p.cl.Close()
		close(closed)
	}()
	ctx, cancel := context.WithTimeout(p.writeCtx, p.cfg.shutdownTimeout)
	defer cancel()
	select {
	case <-closed:
	case <-ctx.Done():
		p.logger.Error("leaving the group did not finish in time; the group notices when the session times out", "timeout", p.cfg.shutdownTimeout)
	}
}

func (p *Processor[V]) exactlyOnce() bool { return p.cfg.guarantee == ExactlyOnce }

// poll fetches records and hands each partition's records to its task.
// Exactly once, it also ends the transaction every CommitInterval.
//
// Exactly once, rebalances wait for the transaction: a poll that returns
// records holds the group's rebalance callbacks back (BlockRebalanceOnPoll)
// until the poll loop allows them, which it does only once the transaction
// has no work in it. When a callback waits, the client says so
// (rebalanceBlocked) and the poll loop commits at once, then lets it go
// ahead. The client's transaction session aborts a transaction that
// partitions were revoked from; this way none are revoked from a
// transaction with work in it. The commit itself can go ahead while the
// group rebalances: the client's group session is still alive (its
// heartbeats answer REBALANCE_IN_PROGRESS, and the session, with KIP-447
// brokers, commits despite that), or, during a rejoin, the commit waits for
// the new session, whose callbacks wait for the poll loop in turn.
func (p *Processor[V]) poll(ctx context.Context) error {
	txnStart := time.Now()
	p.txnHasWork = false
	p.txnHanded = make(map[*task[V]]int64)
	for {
		pollCtx, cancel := context.WithCancel(ctx)
		if p.txnHasWork {
			// A poll whose context is done returns nothing, even what is
			// buffered: the deadline must lie ahead, which the commit
			// below makes sure of.
			due := txnStart.Add(p.cfg.commitInterval)
			if p.isJoining() {
				due = txnStart.Add(p.joinWait())
			}
			pollCtx, cancel = context.WithDeadline(ctx, due)
		}
		p.mu.Lock()
		p.wakePoll = cancel
		if p.rebalanceWaiting || p.endSoon.Load() {
			// Woken before the poll began.
			cancel()
		}
		p.mu.Unlock()
		fetches := p.cl.PollFetches(pollCtx)
		p.mu.Lock()
		p.wakePoll = nil
		p.mu.Unlock()
		cancel()
		var fetchErr error
		fetches.EachError(func(t string, part int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			p.logger.Warn("fetch error", "topic", t, "partition", part, "err", err)
			if t == "" && !fatalGroupError(err) {
				// The client rejoins the group by itself, as after a
				// broker restart that forgot this member.
				return
			}
			if fetchErr == nil && fatalKafkaError(err) {
				fetchErr = fmt.Errorf("group %s: fetch %s/%d: %w", p.g.name, t, part, err)
			}
		})
		if fetchErr != nil {
			p.allowRebalance()
			return fetchErr
		}
		if p.exactlyOnce() && p.endSoon.Load() && fetches.NumRecords() > 0 {
			// Partitions were revoked or lost while this poll waited
			// for the callback: the client's session aborts the open
			// transaction and sets the consumer back to the committed
			// offsets, so these records are fetched again after it.
			// Rather than have them processed in a transaction that
			// aborts, end it first, and hand them to no one. The abort
			// is explicit: a commit would commit their offsets.
			p.endSoon.Store(false)
			if err := p.endHeld(kgo.TryAbort); err != nil {
				p.fail(err)
				return err
			}
			p.allowRebalance()
			continue
		}
		// Whatever the poll returned is handed out even when ctx is done:
		// exactly once, the client counts polled records as consumed, and
		// the last transaction commits their offsets.
		p.mu.Lock()
		tasks := p.tasks
		p.mu.Unlock()
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			t := tasks[fp.Partition]
			if t == nil {
				if p.exactlyOnce() {
					// The transaction would commit this offset.
					p.fail(fmt.Errorf("group %s: records of %s/%d arrived with no task to process them", p.g.name, fp.Topic, fp.Partition))
				}
				return
			}
			if p.exactlyOnce() {
				if !p.txnHasWork {
					p.txnHasWork, txnStart = true, time.Now()
				}
				p.txnHanded[t] += int64(len(fp.Records))
			}
			t.deliver(fp.Records, fp.HighWatermark)
		})
		if ctx.Err() != nil {
			// Exactly once, rebalances stay held back until the last
			// transaction ended (endLastTransaction).
			if !p.exactlyOnce() {
				p.allowRebalance()
			}
			return p.firstError()
		}
		due := p.txnHasWork && time.Since(txnStart) >= p.cfg.commitInterval
		if due && p.exactlyOnce() && p.isJoining() && time.Since(txnStart) < p.joinWait() {
			// While the member joins the group again, ending the
			// transaction would abort it: the client would commit its
			// offsets with the generation that the join ends. It ends
			// when the new session's first callback waits (see
			// joinWatch).
			due = false
		}
		if p.exactlyOnce() {
			// After a rebalance took partitions away, the transaction
			// ends at once, even with no work in it: until it ends,
			// the client does not report further revocations (see
			// revoked).
			if p.endSoon.Swap(false) {
				due = true
			}
			// A rebalance waits for the records in hand.
			if p.txnHasWork && p.rebalanceIsWaiting() {
				due = true
			}
		}
		if due && p.firstError() == nil {
			if err := p.endHeld(kgo.TryCommit); err != nil {
				p.fail(err)
				return err
			}
		}
		// At least once, a rebalance may go ahead once the records are
		// with their tasks: a revoked task writes what it has. Exactly
		// once, only when no work would be aborted.
		if !p.exactlyOnce() || !p.txnHasWork {
			p.allowRebalance()
		}
		select {
		case <-p.failed:
			return p.firstError()
		default:
		}
	}
}

// fail records the first error and makes Run return it.
func (p *Processor[V]) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
		close(p.failed)
		p.logger.Error("processor failed", "err", err)
	}
}

func (p *Processor[V]) firstError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
