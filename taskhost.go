package sluice

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// taskHost is all a Kafka task needs of the processor that runs it, made
// once per Run before the first partition is assigned: the contexts and
// settings of the run, the readers that restore its tables, the engine
// configuration its partitions share, and the two calls a task makes back,
// to fail the run and to hand a written batch to the delivery guarantee.
type taskHost[V any] struct {
	group       string
	table       string // the changelog topic, "" without a table
	windows     string // the windows' changelog topic, "" without windows
	inputTopics []string
	joinTopics  []string

	ctx      context.Context // cancelled when Run stops
	writeCtx context.Context // writes to Kafka; outlives ctx for a graceful stop
	// How long a task waits for its records to be acknowledged.
	ackTimeout time.Duration
	maxBatch   int
	input      *inputBudget // shared by the processor's tasks
	gate       *produceGate // the same
	resumes    *resumeGate  // when restored tasks' partitions are resumed
	batch      *batchConfig
	storage    store.Builder
	logger     *slog.Logger
	metrics    *processorMetrics

	restore *tableReader // nil without a table
	// The windows topic's reader, nil without windows.
	winRestore *tableReader
	joins      map[string]*tableReader // by joined topic
	engine     *engineConfig[V]

	fail    func(error)
	written func(*task[V], map[string]kgo.EpochOffset) error // the guarantee's: after a batch is acknowledged
	// At least once, what the tasks note for the commits of concurrent
	// inputs (concurrentresume.go); nil otherwise.
	ccBook *ccBook
	// What commits at once when every task is idle (idlecommit.go).
	idle *idleCommits[V]
}

// taskHost returns what the processor's tasks need of it; Run has set up
// everything it holds by the time partitions are assigned.
func (p *Processor[V]) taskHost() *taskHost[V] {
	h := &taskHost[V]{
		group:       p.g.name,
		inputTopics: p.g.inputTopics(),
		ctx:         p.ctx,
		writeCtx:    p.writeCtx,
		ackTimeout:  p.ackTimeout,
		maxBatch:    p.cfg.maxBatch,
		input:       newInputBudget(p.cfg.maxBufferedBytes),
		gate:        newProduceGate(p.writeCtx),
		resumes:     newResumeGate(),
		batch:       &p.cfg.batch,
		storage:     p.standbys.storage(p.cfg.storage),
		logger:      p.logger,
		metrics:     p.metrics,
		restore:     p.restore,
		winRestore:  p.winRestore,
		joins:       p.joins,
		engine:      p.engineConfig(),
		fail:        p.fail,
		written:     p.strategy.written,
		ccBook:      newCCBook(p),
		idle:        newIdleCommits(p),
	}
	if p.g.Persisted() {
		h.table = p.g.TableTopic()
	}
	if p.g.windowLogged() {
		h.windows = p.g.WindowsTopic()
	}
	for _, j := range p.g.joins {
		h.joinTopics = append(h.joinTopics, j.topic)
	}
	return h
}
