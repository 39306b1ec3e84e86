package sluice

// A Processor is a group's definition with its validated configuration;
// what one Run of it does is in run.go, its rebalance callbacks in
// rebalance.go, its delivery guarantee in guarantee.go, alo.go and eos.go.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// minCommitInterval is the shortest CommitInterval at least once: the
// shortest interval the Kafka client autocommits at. It is also the default
// exactly once.
const minCommitInterval = 100 * time.Millisecond

// minTransactionInterval is the shortest CommitInterval exactly once, where
// the poll loop ends the transactions itself. Each transaction costs a few
// round trips to the brokers and a commit marker in every partition it
// wrote, and the poll loop hands out no records while it ends one.
const minTransactionInterval = 10 * time.Millisecond

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

	// Warm copies of each partition's table on other processors; see
	// Standbys.
	standbys int
	// strictPartitioning makes misplaced input records failed records.
	strictPartitioning bool
	// The input a task may hold before processing it, in bytes.
	maxBufferedBytes int
	// How long a partition stays idle before its stream time follows
	// the wall clock; 0: never.
	idleAdvance time.Duration
	// How much longer than its longest window a windows topic keeps
	// records; see WindowsRetentionMargin.
	windowsMargin time.Duration
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

	runState[V]

	// Outcomes of the error policy, and of transactions.
	skipped, deadLettered atomic.Int64
	commits, aborts       atomic.Int64
	redone                atomic.Int64
	rebalances            atomic.Int64
	started               atomic.Bool
	placement             placement
	standbys              *standbySet // nil without Standbys
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
		windowsMargin:   DefaultWindowsRetentionMargin,
		shutdownTimeout: 30 * time.Second,
		sessionTimeout:  10 * time.Second,
	}
	cfg.maxBufferedBytes = 32 << 20
	for _, o := range opts {
		if o != nil {
			o.applyProcessor(&cfg)
		}
	}
	if err := cfg.client.check("group " + g.name); err != nil {
		return nil, err
	}
	if cfg.guarantee != AtLeastOnce && cfg.guarantee != ExactlyOnce {
		return nil, fmt.Errorf("group %s: Guarantee must be AtLeastOnce or ExactlyOnce, got %d", g.name, cfg.guarantee)
	}
	if cfg.startAt != Earliest && cfg.startAt != Latest {
		return nil, fmt.Errorf("group %s: StartAt must be Earliest or Latest, got %d", g.name, cfg.startAt)
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
		// One directory per group: a Builder's directory belongs to one
		// processor at a time, and processors of different groups may run
		// in one process.
		cfg.storage = pebble.Builder(filepath.Join(dir, g.name), popts...)
	}
	if cfg.policy.kind == deadLetterPolicy {
		if cfg.policy.topic == "" {
			return nil, fmt.Errorf("group %s: DeadLetter needs a topic", g.name)
		}
		if err := checkTopicName(cfg.policy.topic); err != nil {
			return nil, fmt.Errorf("group %s: dead-letter topic: %w", g.name, err)
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
	if cfg.standbys < 0 {
		return nil, fmt.Errorf("group %s: Standbys must not be negative, got %d", g.name, cfg.standbys)
	}
	if cfg.standbys > 0 && !g.Persisted() {
		return nil, fmt.Errorf("group %s: Standbys keeps copies of the group's table, and the group has none (see Persist)", g.name)
	}
	if cfg.shutdownTimeout <= 0 {
		return nil, fmt.Errorf("group %s: ShutdownTimeout must be positive, got %v", g.name, cfg.shutdownTimeout)
	}
	if cfg.sessionTimeout <= 0 {
		return nil, fmt.Errorf("group %s: SessionTimeout must be positive, got %v", g.name, cfg.sessionTimeout)
	}
	if cfg.windowsMargin < 0 {
		return nil, fmt.Errorf("group %s: WindowsRetentionMargin must not be negative, got %v", g.name, cfg.windowsMargin)
	}
	if cfg.idleAdvance < 0 {
		return nil, fmt.Errorf("group %s: IdleAdvance must not be negative, got %v", g.name, cfg.idleAdvance)
	}
	owned := processorOwned
	if cfg.guarantee != ExactlyOnce && len(g.concurrentInputs()) > 0 {
		owned = append(slices.Clip(owned), concurrentContext)
	}
	if err := checkKafkaOptions("group "+g.name, cfg.client.kafkaOpts, owned); err != nil {
		return nil, err
	}
	if cfg.guarantee == ExactlyOnce && cfg.commitInterval < minTransactionInterval {
		return nil, fmt.Errorf("group %s: CommitInterval must be at least %v exactly once, got %v", g.name, minTransactionInterval, cfg.commitInterval)
	}
	if cfg.guarantee != ExactlyOnce && cfg.commitInterval < minCommitInterval {
		return nil, fmt.Errorf("group %s: CommitInterval must be at least %v at least once, the Kafka client's shortest autocommit interval (outputs do not wait for commits), got %v",
			g.name, minCommitInterval, cfg.commitInterval)
	}
	p := &Processor[V]{
		g:      g,
		cfg:    cfg,
		logger: cfg.client.logger.With("group", g.name),
		inputs: make(map[string]*inputEdge[V]),
	}
	p.tasks = make(map[int32]*task[V])
	p.failed = make(chan struct{})
	for _, in := range g.inputs {
		p.inputs[in.topic] = in
	}
	if cfg.standbys > 0 {
		p.standbys = newStandbySet(cfg.standbys, g.TableTopic(), cfg.storage, p.logger)
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

// Group returns the processor's group definition.
func (p *Processor[V]) Group() *Group[V] { return p.g }
