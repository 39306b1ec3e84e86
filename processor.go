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
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// minCommitInterval is the shortest interval the Kafka client commits at.
const minCommitInterval = 100 * time.Millisecond

// defaultTransactionTimeout is how long the broker lets a transaction stay
// open, exactly once, unless KafkaOptions set kgo.TransactionTimeout. A
// processor that dies leaves its transaction open, and read_committed
// readers of its topics, the next owner of its partitions among them, wait
// until the broker aborts it: ten seconds, as in Kafka Streams, instead of
// kgo's 40.
const defaultTransactionTimeout = 10 * time.Second

type processorConfig struct {
	client          clientConfig
	storage         store.Builder
	commitInterval  time.Duration
	maxBatch        int
	cacheRows       int
	startAt         StartOffset
	policy          Policy
	guarantee       DeliveryGuarantee
	shutdownTimeout time.Duration
	sessionTimeout  time.Duration
	deliveryTimeout time.Duration
	instanceID      string
	batch           batchConfig

	// strictPartitioning makes misplaced input records failed records.
	strictPartitioning bool
	// The input a task may hold before processing it, in bytes.
	maxBufferedBytes int
}

// Processor runs a group over the partitions its consumer group assigns to
// it. Run it with Run; many processors of one group, in one process or many,
// share the partitions.
type Processor[V any] struct {
	g      *Group[V]
	cfg    processorConfig
	logger *slog.Logger

	inputs  map[string]*inputEdge[V]
	metrics *processorMetrics

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

	// Outcomes of the error policy, and of transactions.
	skipped, deadLettered atomic.Int64
	commits, aborts       atomic.Int64
	redone                atomic.Int64
	rebalances            atomic.Int64
	started               atomic.Bool
	placement             placement

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

// NewProcessor checks the group definition and the options and returns a
// processor for the group. It does not connect until Run.
func NewProcessor[V any](g *Group[V], opts ...ProcessorOpt) (*Processor[V], error) {
	if g == nil {
		return nil, errors.New("processor: group is nil")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	cfg := processorConfig{
		client:          defaultClientConfig(),
		maxBatch:        10000,
		cacheRows:       10000,
		shutdownTimeout: 30 * time.Second,
		sessionTimeout:  10 * time.Second,
	}
	cfg.maxBufferedBytes = 16 << 20
	for _, o := range opts {
		o.applyProcessor(&cfg)
	}
	if cfg.commitInterval == 0 {
		cfg.commitInterval = time.Second
		if cfg.guarantee == ExactlyOnce {
			cfg.commitInterval = minCommitInterval
		}
	}
	if cfg.storage == nil {
		dir, err := defaultStateDir()
		if err != nil {
			return nil, fmt.Errorf("group %s: no Storage option and %w", g.name, err)
		}
		// With Metrics the stores count their rows, for sluice_table_rows.
		var popts []pebble.Opt
		if cfg.client.metrics != nil {
			popts = append(popts, pebble.CountRows())
		}
		cfg.storage = pebble.Builder(dir, popts...)
	}
	if cfg.policy.kind == deadLetterPolicy {
		if cfg.policy.topic == "" {
			return nil, fmt.Errorf("group %s: DeadLetter needs a topic", g.name)
		}
		if kind, ok := g.usesTopic(cfg.policy.topic); ok {
			return nil, fmt.Errorf("group %s: dead-letter topic %s is already the group's %s", g.name, cfg.policy.topic, kind)
		}
	}
	if cfg.maxBatch <= 0 {
		return nil, fmt.Errorf("group %s: MaxBatch must be positive, got %d", g.name, cfg.maxBatch)
	}
	if cfg.cacheRows <= 0 {
		return nil, fmt.Errorf("group %s: CacheRows must be positive, got %d", g.name, cfg.cacheRows)
	}
	if cfg.maxBufferedBytes <= 0 {
		return nil, fmt.Errorf("group %s: MaxBufferedBytes must be positive, got %d", g.name, cfg.maxBufferedBytes)
	}
	if cfg.deliveryTimeout != 0 && cfg.deliveryTimeout < time.Second {
		return nil, fmt.Errorf("group %s: DeliveryTimeout must be at least 1s, got %v", g.name, cfg.deliveryTimeout)
	}
	if cfg.commitInterval < minCommitInterval {
		return nil, fmt.Errorf("group %s: CommitInterval must be at least %v, got %v", g.name, minCommitInterval, cfg.commitInterval)
	}
	p := &Processor[V]{
		g:      g,
		cfg:    cfg,
		logger: cfg.client.logger.With("group", g.name),
		inputs: make(map[string]*inputEdge[V]),
		tasks:  make(map[int32]*task[V]),
		failed: make(chan struct{}),
	}
	for _, in := range g.inputs {
		p.inputs[in.topic] = in
	}
	var err error
	if p.metrics, err = newProcessorMetrics(g.name, &cfg.client); err != nil {
		return nil, err
	}
	return p, nil
}

func defaultStateDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory for the default state store: %w", err)
	}
	return filepath.Join(dir, "sluice", "state"), nil
}

// Stats are counts of what a processor did.
type Stats struct {
	// Group is the processor's group.
	Group string
	// Consumed is how many input records the processor's tasks processed;
	// Produced is how many records it wrote and Kafka acknowledged:
	// changelog records, outputs, loopbacks and dead letters.
	Consumed, Produced int64
	// Failed is how many records the Fail policy stopped at.
	Failed int64
	// LastError is the last error the processor met: a failed, skipped or
	// dead-lettered record, or a failed commit. Nil if none.
	LastError *ErrorEvent
	// Skipped is how many failed records the Skip policy went past.
	Skipped int64
	// DeadLettered is how many failed records went to the dead-letter
	// topic.
	DeadLettered int64
	// Misplaced is how many input records were not on the partition the
	// processor's Hasher places their key on (see MisplacedError).
	Misplaced int64
	// Commits and Aborts count transactions, exactly once.
	Commits, Aborts int64
	// Redone is how many input records, exactly once, were handed to
	// tasks in transactions that then aborted: their effects are dropped
	// and the records are processed again, here or by the partition's
	// next owner. A rebalance aborts no work (the transaction commits
	// before the group's callbacks run); a failed record, a broker that
	// cannot be reached or a member dropped from the group does.
	Redone int64
	// Rebalances counts the assignments this processor received.
	Rebalances int64
	// Partitions is the state of each partition the processor owns, in
	// partition order.
	Partitions []PartitionStatus
}

// PartitionStatus is the state of one partition a processor owns.
type PartitionStatus struct {
	Partition int32
	// State is "restoring" until the partition's tables are restored, then
	// "running".
	State string
	// RestoreOffset and RestoreEnd say how far restoring the group's table
	// is: the next changelog offset to read and the offset it restores to.
	// Both are 0 for a group without a table.
	RestoreOffset, RestoreEnd int64
	// Restored is how many changelog records were read to restore the
	// table: 0 when the local store was up to date.
	Restored int64
	// Consumed is how many input records the partition's task processed
	// since the partition was assigned to this processor.
	Consumed int64
	// Redone is how many of the records handed to the partition's task
	// since it was assigned were in transactions that aborted, exactly
	// once (see Stats.Redone).
	Redone int64
	// Inputs is the group's position in the partition of each input, in
	// topic order, as last measured (every few seconds); Lag is their sum
	// and LagMeasured when it was measured. Until the first measurement
	// Inputs is empty and Lag is -1.
	Inputs      []InputStatus
	Lag         int64
	LagMeasured time.Time
	// TableRows is the number of rows of the partition's table, as its
	// store counts them while it changes them (see store.RowCounter): the
	// memory store does, and Pebble with pebble.CountRows, which the
	// default storage uses when the processor exports Metrics. It is -1
	// while the partition restores and when the store does not count; rows
	// are never read to count them.
	TableRows int64
	// LastError is the last error met in the partition: a failed, skipped
	// or dead-lettered record, or a failed commit. Nil if none.
	LastError *ErrorEvent
}

// Stats returns what the processor has done since it was created.
func (p *Processor[V]) Stats() Stats {
	s := Stats{
		Skipped:      p.skipped.Load(),
		DeadLettered: p.deadLettered.Load(),
		Misplaced:    p.placement.misplaced.Load(),
		Commits:      p.commits.Load(),
		Aborts:       p.aborts.Load(),
		Redone:       p.redone.Load(),
		Rebalances:   p.rebalances.Load(),
	}
	p.mu.Lock()
	tasks := slices.Collect(maps.Values(p.tasks))
	p.mu.Unlock()
	for _, t := range tasks {
		st := PartitionStatus{Partition: t.partition, State: "restoring"}
		if t.active.Load() {
			st.State = "running"
		}
		st.RestoreOffset, st.RestoreEnd, st.Restored = t.restoreOffset.Load(), t.restoreEnd.Load(), t.restored.Load()
		st.Redone = t.redone.Load()
		if p.restore != nil {
			if off, end, n, ok := p.restore.progress(t.partition); ok {
				st.RestoreOffset, st.RestoreEnd, st.Restored = off, end, n
			}
		}
		p.addPartitionStats(t, &st)
		s.Partitions = append(s.Partitions, st)
	}
	slices.SortFunc(s.Partitions, func(a, b PartitionStatus) int { return int(a.Partition - b.Partition) })
	p.addStats(&s)
	return s
}

// Group returns the processor's group definition.
func (p *Processor[V]) Group() *Group[V] { return p.g }

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

// ensureTopics creates what is missing and checks co-partitioning.
func (p *Processor[V]) ensureTopics(ctx context.Context) (map[string]int32, error) {
	cl, err := kgo.NewClient(p.cfg.client.kgoOpts()...)
	if err != nil {
		return nil, fmt.Errorf("group %s: client: %w", p.g.name, err)
	}
	defer cl.Close()
	def := p.cfg.client
	var inputs []kafka.TopicSpec
	for _, in := range p.g.inputs {
		if !in.loop {
			inputs = append(inputs, kafka.TopicSpec{Name: in.topic, Partitions: def.partitions, Replication: def.replication})
		}
	}
	counts, err := kafka.EnsureTopics(ctx, cl, inputs...)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", p.g.name, err)
	}
	n := def.partitions
	if len(inputs) > 0 {
		n = counts[inputs[0].Name]
	}
	// Topics that belong to the group follow its inputs' partition count.
	var owned []kafka.TopicSpec
	if p.g.Persisted() {
		owned = append(owned, kafka.TopicSpec{Name: p.g.TableTopic(), Partitions: n, Replication: def.replication, Compacted: true})
	}
	for _, in := range p.g.inputs {
		if in.loop {
			owned = append(owned, kafka.TopicSpec{Name: in.topic, Partitions: n, Replication: def.replication})
		}
	}
	for _, j := range p.g.joins {
		owned = append(owned, kafka.TopicSpec{Name: j.topic, Partitions: n, Replication: def.replication, Compacted: true})
	}
	for _, o := range slices.Sorted(maps.Keys(p.g.outputs)) {
		owned = append(owned, kafka.TopicSpec{Name: o, Partitions: def.partitions, Replication: def.replication})
	}
	if p.cfg.policy.kind == deadLetterPolicy {
		owned = append(owned, kafka.TopicSpec{Name: p.cfg.policy.topic, Partitions: def.partitions, Replication: def.replication})
	}
	more, err := kafka.EnsureTopics(ctx, cl, owned...)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", p.g.name, err)
	}
	maps.Copy(counts, more)
	copartitioned := make(map[string]int32)
	for _, in := range p.g.inputs {
		copartitioned[in.topic] = counts[in.topic]
	}
	if p.g.Persisted() {
		copartitioned[p.g.TableTopic()] = counts[p.g.TableTopic()]
	}
	for _, j := range p.g.joins {
		copartitioned[j.topic] = counts[j.topic]
	}
	for _, c := range copartitioned {
		if c != n {
			return nil, &CopartitionError{Group: p.g.name, Counts: copartitioned}
		}
	}
	p.placement.partitions = n
	return copartitioned, nil
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

// endTransaction ends the open transaction and begins the next: every
// active task writes its batch into it, the transaction commits (if try is
// TryCommit) with the offsets of every record polled (all of them processed
// by then), and the tasks apply its row changes to their stores, or forget
// them if it aborted.
func (p *Processor[V]) endTransaction(try kgo.TransactionEndTry) error {
	tasks := p.activeTasks()
	if err := stepAll(tasks, prepare); err != nil {
		return err
	}
	// The records are acknowledged by now (prepare waited for them); what
	// is left is a few requests. One that hangs past the transaction
	// timeout would end in an abort by the broker anyway.
	ctx, cancel := context.WithTimeout(p.writeCtx, 20*time.Second)
	defer cancel()
	committedTxn, err := p.txn.End(ctx, try)
	outcome := aborted
	if committedTxn {
		outcome = committed
	} else {
		p.aborts.Add(1)
		p.logger.Info("transaction aborted; its records are processed again", "redone", p.countRedone(), "err", err)
		p.metrics.setError(-1, "transaction aborted", err)
	}
	clear(p.txnHanded)
	if err != nil {
		// End can fail before it ends the transaction (records it could
		// not flush); abort what is left of it, so the next can begin.
		actx, acancel := context.WithTimeout(p.writeCtx, 30*time.Second)
		_, aerr := p.txn.End(actx, kgo.TryAbort)
		acancel()
		if aerr != nil {
			return fmt.Errorf("group %s: abort transaction after a failed commit (%v): %w", p.g.name, err, aerr)
		}
	}
	if serr := stepAll(tasks, outcome); serr != nil {
		return fmt.Errorf("group %s: end transaction: %w", p.g.name, serr)
	}
	// A failed end (the broker was unreachable, the producer was fenced
	// after a long outage) aborted the transaction: its records are read
	// again. Only a producer that cannot begin the next one is fatal.
	p.txnHasWork = false
	if committedTxn {
		p.commits.Add(1)
	}
	if err := p.txn.Begin(); err != nil {
		return fmt.Errorf("group %s: begin transaction: %w", p.g.name, err)
	}
	return nil
}

// endLastTransaction commits the open transaction on a graceful stop, or
// aborts it after a failure, and lets rebalances go ahead.
func (p *Processor[V]) endLastTransaction() {
	defer p.allowRebalance()
	if p.firstError() == nil && p.txnHasWork {
		p.waitJoined()
		if err := p.endHeld(kgo.TryCommit); err != nil {
			p.logger.Warn("final transaction failed", "err", err)
		}
	}
	if p.txnHasWork {
		p.logger.Info("last transaction aborted; its records are processed again", "redone", p.countRedone())
		clear(p.txnHanded)
	}
	ctx, cancel := context.WithTimeout(p.writeCtx, 30*time.Second)
	defer cancel()
	if _, err := p.txn.End(ctx, kgo.TryAbort); err != nil {
		p.logger.Warn("abort of the last transaction failed", "err", err)
	}
	_ = stepAll(p.activeTasks(), aborted)
}

// countRedone adds the records handed out in the transaction that is
// aborting to the counts of redone records, and returns how many they are.
func (p *Processor[V]) countRedone() int64 {
	var n int64
	for t, handed := range p.txnHanded {
		t.redone.Add(handed)
		n += handed
	}
	p.redone.Add(n)
	return n
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

func (p *Processor[V]) activeTasks() []*task[V] {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ts []*task[V]
	for _, t := range p.tasks {
		if t.active.Load() {
			ts = append(ts, t)
		}
	}
	return ts
}

func (p *Processor[V]) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	numbers := partitionNumbers(assigned)
	p.mu.Lock()
	p.joinEndedLocked()
	p.mu.Unlock()
	p.rebalances.Add(1)
	p.logger.Info("partitions assigned", "partitions", numbers)
	// A task of a partition assigned anew was not told it lost the
	// partition (exactly once, the client reports only the first
	// revocation of a transaction). Its rows may be stale: it stops,
	// dropping its work, and a new task restores.
	if stale := p.takeTasks(numbers); len(stale) > 0 {
		p.logger.Warn("partitions assigned again without being released; restarting their tasks", "tasks", len(stale))
		p.stopTasks(stale, false)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		// Assigned while leaving: whoever owns them next processes them.
		return
	}
	tasks := maps.Clone(p.tasks)
	var started []*task[V]
	pause := make(map[string][]int32)
	for _, n := range numbers {
		t := newTask(p, cl, n)
		tasks[n] = t
		started = append(started, t)
		for topic, ps := range assigned {
			if slices.Contains(ps, n) {
				pause[topic] = append(pause[topic], n)
			}
		}
	}
	// A new task's partitions fetch nothing until it has restored its
	// tables; it resumes them itself.
	cl.PauseFetchPartitions(pause)
	p.tasks = tasks
	for _, t := range started {
		go t.run()
	}
}

// revoked and lost are called by the client during a rebalance. Exactly
// once, the client's transaction session calls them only for the first
// revocation and the first loss of a transaction, and aborts that
// transaction; so the poll loop is woken to end it at once, and assigned
// checks for tasks that missed a revocation. The poll loop committed the
// work before it let the callback run (see poll), so what aborts is empty
// unless the member was dropped from the group.
func (p *Processor[V]) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	p.release(ctx, cl, revoked, true)
	if len(revoked) > 0 {
		p.wakeToEnd()
	}
}

func (p *Processor[V]) lost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	p.release(ctx, cl, lost, false)
	// The session marks its transaction lost even when nothing was lost
	// (as after a second failed join): end it before more work goes in.
	p.wakeToEnd()
}

func (p *Processor[V]) wakeToEnd() {
	if !p.exactlyOnce() {
		return
	}
	p.endSoon.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wakePoll != nil {
		p.wakePoll()
	}
}

// release stops the tasks of partitions this processor no longer owns. When
// commit is set (a revoke, not a loss), what they finished is committed
// before the partitions can move.
func (p *Processor[V]) release(ctx context.Context, cl *kgo.Client, parts map[string][]int32, commit bool) {
	numbers := partitionNumbers(parts)
	if len(numbers) == 0 {
		return
	}
	p.logger.Info("partitions released", "partitions", numbers, "revoked", commit)
	stopping := p.takeTasks(numbers)
	if p.exactlyOnce() {
		// Their work is committed (see poll), or, after the member was
		// dropped from the group, in the open transaction, which now
		// aborts: the next owner processes their records again.
		p.stopTasks(stopping, false)
		cl.ResumeFetchPartitions(parts)
		return
	}
	p.stopTasks(stopping, commit)
	if commit {
		if err := cl.CommitMarkedOffsets(ctx); err != nil {
			p.logger.Warn("commit on revoke failed", "err", err)
			p.metrics.setError(-1, "commit on revoke", err)
		}
	}
	// Pauses outlive assignments; clear them so a later assignment starts
	// from a known state.
	cl.ResumeFetchPartitions(parts)
}

// takeTasks removes the tasks of the given partitions, if any, and returns
// them. The map is replaced, not changed: the poll loop reads it unlocked.
func (p *Processor[V]) takeTasks(numbers []int32) []*task[V] {
	p.mu.Lock()
	defer p.mu.Unlock()
	tasks := maps.Clone(p.tasks)
	var taken []*task[V]
	for _, n := range numbers {
		if t := tasks[n]; t != nil {
			taken = append(taken, t)
			delete(tasks, n)
		}
	}
	p.tasks = tasks
	return taken
}

func (p *Processor[V]) allTasks() []*task[V] {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := slices.Collect(maps.Values(p.tasks))
	p.tasks = make(map[int32]*task[V])
	return ts
}

// stopTasks stops tasks concurrently and waits for them, no longer than the
// shutdown timeout. With flush set they write and mark what they processed;
// without, they drop it. A task's waits for Kafka are bounded (see
// task.waitAcknowledged), so only a handler that does not return keeps a
// task from stopping; it is left to finish on its own.
func (p *Processor[V]) stopTasks(ts []*task[V], flush bool) {
	for _, t := range ts {
		t.requestStop(flush)
	}
	timeout := time.NewTimer(p.cfg.shutdownTimeout)
	defer timeout.Stop()
	for i, t := range ts {
		select {
		case <-t.done:
		case <-timeout.C:
			var left []int32
			for _, t := range ts[i:] {
				select {
				case <-t.done:
				default:
					left = append(left, t.partition)
				}
			}
			p.logger.Error("tasks did not stop in time; leaving them", "partitions", left, "timeout", p.cfg.shutdownTimeout)
			return
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

// partitionNumbers returns the distinct partition numbers across topics.
func partitionNumbers(parts map[string][]int32) []int32 {
	set := make(map[int32]struct{})
	for _, ps := range parts {
		for _, n := range ps {
			set[n] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}
