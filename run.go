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
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
)

// runState is the state of a processor's one Run: its client and transaction
// session, the readers of its tables, and its tasks.
type runState[V any] struct {
	// Set by Run.
	cl       *kgo.Client
	strategy deliveryStrategy[V] // the delivery guarantee's
	writeCtx context.Context     // for writes to Kafka; see Run
	// How long a task waits for its records to be acknowledged: the
	// delivery timeout, and the produce request timeout for a request in
	// flight when it passes.
	ackTimeout time.Duration
	ctx        context.Context
	restore    *tableReader
	winRestore *tableReader // the windows topic's, nil without windows
	joins      map[string]*tableReader
	lookups    map[string]*tableView
	host       *taskHost[V] // what its tasks need of the processor

	mu      sync.Mutex
	tasks   map[int32]*task[V]
	closing bool          // Run is stopping: no new tasks
	failed  chan struct{} // closed by the first task error
	err     error
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
	p.strategy = newStrategy(p)
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
	if p.g.windowLogged() {
		if p.winRestore, err = newTableReader(&p.cfg.client, p.logger, p.g.WindowsTopic()); err != nil {
			return err
		}
		defer p.winRestore.close()
		background("restore "+p.g.WindowsTopic(), p.winRestore.run)
	}
	var standby kafka.Standby // a nil interface asks for no standbys
	if p.standbys != nil {
		p.standbys.begin(runCtx, p.restore, p.winRestore)
		standby = p.standbys
		// After the tasks have stopped (see below), before the reader
		// closes.
		defer func() {
			if err := p.standbys.close(); err != nil {
				p.logger.Warn("closing standbys", "err", err)
			}
		}()
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
		kgo.Balancers(kafka.CopartitionBalancer(standby)),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
		kgo.RecordPartitioner(p.cfg.client.partitioner()),
		kgo.SessionTimeout(p.cfg.sessionTimeout),
	)
	if p.cfg.instanceID != "" {
		opts = append(opts, kgo.InstanceID(p.cfg.instanceID))
	}
	opts = append(opts, p.metrics.clientOpts()...)
	delivery, err := p.writeTimeouts()
	if err != nil {
		return err
	}
	// Given first, so that KafkaOptions can override them (see
	// kafkaopts.go).
	opts = append([]kgo.Opt{
		kgo.RecordDeliveryTimeout(delivery),
		kgo.ProducerLinger(0),
		// Restored partitions are resumed while a fetch may be waiting on
		// others; a short wait lets the next fetch include them soon.
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.FetchMaxBytes(fetchMaxBytes(p.cfg.maxBufferedBytes)),
		kgo.MaxBufferedBytes(produceMaxBufferedBytes(p.cfg.maxBufferedBytes)),
	}, opts...)
	// Partitions may be assigned as soon as the client exists.
	p.host = p.taskHost()
	if p.cl, err = p.strategy.open(runCtx, p.strategy.clientOpts(opts)); err != nil {
		if errors.Is(err, errStoppedStarting) {
			return nil
		}
		return fmt.Errorf("group %s: client: %w", p.g.name, err)
	}
	background("lag", p.measureLag)
	if book := p.host.ccBook; book != nil {
		background("concurrent input commits", func(ctx context.Context) error {
			book.refreshCommits(ctx, p.cl, p.cfg.commitInterval, func(err error) { p.metrics.setError(-1, "commit", err) })
			return nil
		})
	}
	defer p.attachMetrics()()
	defer func() {
		beginStop()
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		p.strategy.finish()
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
	var lastTick time.Time
	for {
		pollCtx, endPoll := p.strategy.beginPoll(ctx)
		pollCtx, endTick := p.tickPoll(pollCtx, lastTick)
		fetches := p.cl.PollFetches(pollCtx)
		endTick()
		endPoll()
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
			p.strategy.allowRebalance()
			return fetchErr
		}
		if handOut, err := p.strategy.fetched(fetches); err != nil {
			p.fail(err)
			return err
		} else if !handOut {
			continue
		}
		// Whatever the poll returned is handed out even when ctx is done:
		// exactly once, the client counts polled records as consumed, and
		// the last transaction commits their offsets.
		detachUncompressed(fetches)
		p.mu.Lock()
		tasks := p.tasks
		p.mu.Unlock()
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			t := tasks[fp.Partition]
			if !p.strategy.hand(t, fp) {
				return
			}
			t.deliver(fp.Records, fp.HighWatermark)
		})
		lastTick = p.sendTicks(tasks, lastTick)
		if ctx.Err() != nil {
			p.strategy.pollStopped()
			return p.firstError()
		}
		if err := p.strategy.polled(); err != nil {
			p.fail(err)
			return err
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
