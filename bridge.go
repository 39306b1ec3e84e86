package sluice

// The sluice side of internal/bridge: how package sluicetest reaches the
// partition engines. A group is configured by NewProcessor (or
// NewBatchProcessor), exactly as a processor that runs it, but never run:
// the driver feeds its engines and writes their effects to a log in memory.
// Everything a record does is the engine's (engine.go); this file only
// exposes it.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/bridge"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

func init() {
	bridge.NewGroup = newBridgeGroup
	bridge.Handle = handleOf
	bridge.RestoreWindows = restoreWindowsFrom
}

// restoreWindowsFrom applies a windows topic's records to a store that
// holds the table, through the side of the store a task's windows reader
// restores.
func restoreWindowsFrom(st store.Store, changes []store.Change, end int64) error {
	_, windows := splitStore(st)
	return windows.Apply(changes, end)
}

// bridged is what *Group[V] and *BatchGroup[K, V] are to the bridge.
type bridged interface {
	bridge(partitions int32, opts []any) (bridge.Group, error)
}

func newBridgeGroup(g any, partitions int32, opts []any) (bridge.Group, error) {
	b, ok := g.(bridged)
	if !ok || g == nil {
		return nil, fmt.Errorf("%T is not a *sluice.Group or *sluice.BatchGroup", g)
	}
	if partitions <= 0 {
		return nil, fmt.Errorf("partitions must be positive, got %d", partitions)
	}
	return b.bridge(partitions, opts)
}

func (g *Group[V]) bridge(partitions int32, opts []any) (bridge.Group, error) {
	if g == nil {
		return nil, fmt.Errorf("group is nil")
	}
	popts := make([]ProcessorOpt, 0, len(opts)+1)
	for _, o := range opts {
		if o == nil {
			continue
		}
		po, ok := o.(ProcessorOpt)
		if !ok {
			return nil, fmt.Errorf("group %s: %T is not a ProcessorOpt", g.name, o)
		}
		popts = append(popts, po)
	}
	// The driver keeps the stores; none is opened from the option.
	p, err := NewProcessor(g, append(popts, Storage(memory.Builder()))...)
	if err != nil {
		return nil, err
	}
	b := newBridgeProcessor(p, partitions)
	b.tableCodec = g.table
	b.stats = func() any { return p.Stats() }
	return b, nil
}

func (bg *BatchGroup[K, V]) bridge(partitions int32, opts []any) (bridge.Group, error) {
	if bg == nil {
		return nil, fmt.Errorf("batch group is nil")
	}
	bopts := make([]BatchProcessorOpt, 0, len(opts)+1)
	for _, o := range opts {
		if o == nil {
			continue
		}
		bo, ok := o.(BatchProcessorOpt)
		if !ok {
			return nil, fmt.Errorf("group %s: %T is not a BatchProcessorOpt", bg.name, o)
		}
		bopts = append(bopts, bo)
	}
	bp, err := NewBatchProcessor(bg, append(bopts, Storage(memory.Builder()))...)
	if err != nil {
		return nil, err
	}
	b := newBridgeProcessor(bp.p, partitions)
	b.inputCodec = func(topic string) any {
		for _, in := range bg.inputs {
			if in.topic == topic {
				return in.value
			}
		}
		return nil
	}
	b.stats = func() any { return bp.Stats() }
	return b, nil
}

// bridgeProcessor is a configured processor whose engines a driver runs.
type bridgeProcessor[V any] struct {
	p          *Processor[V]
	cfg        *engineConfig[V]
	tableCodec any
	inputCodec func(topic string) any
	lookups    map[string]store.Store
	stats      func() any
}

func newBridgeProcessor[V any](p *Processor[V], partitions int32) *bridgeProcessor[V] {
	b := &bridgeProcessor[V]{p: p, lookups: make(map[string]store.Store)}
	// Every topic of the driver has the same partition count, so the
	// placement check is that of co-partitioned inputs.
	p.placement.partitions = partitions
	// A lookup table is one store holding the whole topic: Hasher places
	// every key on the only partition of the view.
	p.lookups = make(map[string]*tableView, len(p.g.lookups))
	for _, l := range p.g.lookups {
		st := memory.New()
		b.lookups[l.topic] = st
		tv := newTableView(l.topic, viewConfig{client: p.cfg.client})
		tv.stores = []store.Store{st}
		p.lookups[l.topic] = tv
	}
	b.cfg = p.engineConfig()
	b.inputCodec = func(topic string) any {
		if in := p.inputs[topic]; in != nil {
			return in.codec
		}
		return nil
	}
	return b
}

func (b *bridgeProcessor[V]) Name() string                { return b.p.g.name }
func (b *bridgeProcessor[V]) Inputs() []string            { return b.p.g.inputTopics() }
func (b *bridgeProcessor[V]) InputCodec(topic string) any { return b.inputCodec(topic) }
func (b *bridgeProcessor[V]) TableCodec() any             { return b.tableCodec }
func (b *bridgeProcessor[V]) Stats() any                  { return b.stats() }
func (b *bridgeProcessor[V]) ExactlyOnce() bool           { return b.p.cfg.guarantee == ExactlyOnce }
func (b *bridgeProcessor[V]) Lookup(topic string) store.Store {
	return b.lookups[topic]
}

func (b *bridgeProcessor[V]) Windows() string {
	if !b.p.g.windowLogged() {
		return ""
	}
	return b.p.g.WindowsTopic()
}

func (b *bridgeProcessor[V]) Table() string {
	if !b.p.g.Persisted() {
		return ""
	}
	return b.p.g.TableTopic()
}

func (b *bridgeProcessor[V]) Joins() []string   { return tableTopics(b.p.g.joins) }
func (b *bridgeProcessor[V]) Lookups() []string { return tableTopics(b.p.g.lookups) }

func tableTopics(edges []*tableEdge) []string {
	topics := make([]string, len(edges))
	for i, t := range edges {
		topics[i] = t.topic
	}
	return topics
}

func (b *bridgeProcessor[V]) DeadLetterTopic() string {
	if b.p.cfg.policy.kind == deadLetterPolicy {
		return b.p.cfg.policy.topic
	}
	return ""
}

func (b *bridgeProcessor[V]) BatchSize() int {
	if b.cfg.batch == nil {
		return 0
	}
	return b.cfg.batch.size
}

func (b *bridgeProcessor[V]) Partition(key []byte, n int32) int32 {
	return b.cfg.hasher.orDefault().fn.Partition(key, int(n))
}

func (b *bridgeProcessor[V]) Ended(committed bool, redone int64) {
	if committed {
		b.p.commits.Add(1)
		return
	}
	b.p.aborts.Add(1)
	b.p.redone.Add(redone)
}

func (b *bridgeProcessor[V]) NewEngine(partition int32, table store.Store, joins map[string]store.Store, now func() time.Time) bridge.Engine {
	be := &bridgeEngine[V]{m: new(taskMetrics)}
	be.m.init(b.p.metrics, partition, b.p.g.inputTopics())
	cfg := *b.cfg
	cfg.now = now
	be.e = newEngine(&cfg, enginePartition{partition: partition, table: table, windows: b.Windows(), joins: joins, metrics: be.m})
	if b.cfg.batch != nil {
		be.call = be.e.newBatchCall()
	}
	return be
}

// bridgeEngine is one partition engine, as a driver calls it.
type bridgeEngine[V any] struct {
	e    *engine[V]
	m    *taskMetrics
	call *batchCall // batch groups only
}

func (be *bridgeEngine[V]) Process(ctx context.Context, recs []*kgo.Record) (int, error) {
	if be.e.isConcurrent(recs[0].Topic) {
		return be.processConcurrent(recs)
	}
	if be.e.cfg.batch == nil {
		return be.e.process(ctx, recs)
	}
	// As a batch task's handleBatch: the engine runs the handler, and the
	// BatchState stores are flushed before what it sent is written.
	c := be.call
	c.ctx = ctx
	defer func() {
		clear(c.sent)
		c.sent = c.sent[:0]
		clear(c.kept)
		c.kept = c.kept[:0]
		c.decoded = nil
	}()
	start := time.Now()
	handled, err := be.e.processBatch(c, recs)
	if err != nil {
		return 0, err
	}
	if handled {
		if err := be.e.cfg.batch.runner.flushStates(ctx); err != nil {
			return 0, fmt.Errorf("group %s: partition %d: flush state: %w", be.e.cfg.group.name, be.e.partition, err)
		}
	}
	be.e.cfg.batch.stats.observe(be.e.partition, len(recs), time.Since(start))
	return len(recs), nil
}

// processConcurrent runs recs, of a concurrent input, as a Kafka task does,
// and returns once every one finished, so that the test sees their effects:
// the handlers run concurrently, ordered per key, and what they emit is
// handed out as on a processor of the same guarantee. Under Fail, it
// returns how many records were released below the lowest unfinished one
// when a record failed, and abandons the others, as a processor that stops.
func (be *bridgeEngine[V]) processConcurrent(recs []*kgo.Record) (int, error) {
	e := be.e
	err := e.handConcurrent(recs)
	for err == nil && e.concurrentHeld() > 0 {
		err = e.finished(<-e.concurrentDone())
	}
	released := e.concurrentReleased(func(string, kgo.EpochOffset) {})
	if e.cc.hold {
		// As at the end of a transaction: the driver writes them in
		// the open one.
		e.out = append(e.out, e.concurrentWrite(func(string, kgo.EpochOffset, string) {})...)
	}
	if err != nil {
		e.stopConcurrent()
		return released, err
	}
	return len(recs), nil
}

// Call runs fn as the handler of an input that reads r.Topic: the engine
// decodes nothing and runs fn where it would run the input's handler, so the
// record's row, undo, placement check, error policy and effects are those
// of any record.
func (be *bridgeEngine[V]) Call(ctx context.Context, r *kgo.Record, fn func(any) error) error {
	e := be.e
	if e.cfg.batch != nil {
		return fmt.Errorf("group %s is a batch group: its handler takes batches", e.cfg.group.name)
	}
	cfg := *e.cfg
	cfg.inputs = map[string]*inputEdge[V]{r.Topic: {topic: r.Topic, decode: func(c *Context[V], _ []byte) error { return fn(c) }}}
	saved := e.cfg
	e.cfg = &cfg
	defer func() { e.cfg = saved }()
	_, err := e.process(ctx, []*kgo.Record{r})
	return err
}

func (be *bridgeEngine[V]) Effects() []*kgo.Record  { return be.e.effects() }
func (be *bridgeEngine[V]) EndBatch() []*kgo.Record { return be.e.endBatch() }

// Discarded forgets what the aborted transaction held. The driver reads
// the records of concurrent inputs again from the committed positions, so
// the engine forgets those too and runs them again.
func (be *bridgeEngine[V]) Discarded() {
	be.e.discarded()
	be.e.stopConcurrent()
}

func (be *bridgeEngine[V]) Applied(end, windowsEnd int64) error {
	if err := be.e.appliedAt(end, windowsEnd); err != nil {
		return err
	}
	return be.e.concurrentEnded(true)
}

// Tick runs the engine's tick, as a Kafka task's tick does.
func (be *bridgeEngine[V]) Tick(now time.Time) error { return be.e.tick(now) }

// AdvanceStreamTime moves stream time as a record at t would, without one.
func (be *bridgeEngine[V]) AdvanceStreamTime(t time.Time) error {
	e := be.e
	if e.cfg.batch != nil || e.tm == nil {
		return nil // stream time is not kept: nothing waits for it
	}
	if err := e.loadTimers(); err != nil {
		return err
	}
	return e.advance(t.UnixNano())
}

// codecHandle is what the handles of a group's edges are to the bridge.
type codecHandle interface {
	codecOf() (topic string, codec any)
}

func handleOf(h any) (string, any, bool) {
	ch, ok := h.(codecHandle)
	if !ok {
		return "", nil, false
	}
	topic, c := ch.codecOf()
	return topic, c, true
}

func (o *OutputTopic[T]) codecOf() (string, any)      { return o.topic, o.codec }
func (l *LoopTopic[M]) codecOf() (string, any)        { return l.topic, l.codec }
func (j *JoinedTable[T]) codecOf() (string, any)      { return j.topic, j.codec }
func (l *LookupTable[T]) codecOf() (string, any)      { return l.topic, l.codec }
func (o *BatchOutputTopic[T]) codecOf() (string, any) { return o.topic, o.codec }
func (s *BatchStore[T]) codecOf() (string, any) {
	if s.state != nil {
		return "", nil // a store outside Kafka, not the group's table
	}
	return "", s.codec
}
