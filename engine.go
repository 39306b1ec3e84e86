package sluice

// The partition engine: what happens to the records of one partition number
// of a group between "these records arrived" and "these records must be
// written; once they are acknowledged, apply these rows". It decodes records,
// runs the handlers, holds the table's rows in front of the store, undoes a
// failed record, applies the error policy and collects the effects. It does
// no Kafka I/O: a driver (the Kafka task, the batch task) feeds it records,
// writes the effects it returns and tells it the outcome.
//
// Invariants:
//   - One goroutine, the driver's, calls the engine; the engine owns its
//     rows, its undo log and the effects it has not handed out.
//   - The store is never ahead of the changelog: rows changed by a batch
//     stay in memory (dirty, then pending) until the driver reports their
//     changelog records acknowledged (applied), and then reach the store in
//     one atomic Apply with the changelog offset they reach. An aborted
//     write (discarded) forgets them, and the engine's view is the store's
//     again.
//   - A failed record leaves no effects, whatever the policy: its row
//     changes are undone and its emits dropped; only the dead letter the
//     policy asks for is written in its place.
//   - A record's emits are handed out only once its handler succeeded, in
//     the order of the records and, within one record, of the calls.
//   - The error policy is applied in one place (onFailure), to failed
//     records and failed batches alike.
//   - The changelog gets one record per key changed in a batch, with the
//     key's latest value (a tombstone if it was deleted). With a windows
//     topic, the windows' rows go there instead, and a purged window gets
//     no record at all (windowlog.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// engineConfig is what the engines of one group share: the definition and
// the settings that decide what a record does, and where the engines count
// and report. It holds nothing of the driver that runs them.
type engineConfig[V any] struct {
	group     *Group[V]
	inputs    map[string]*inputEdge[V] // by topic
	policy    Policy
	cacheRows int
	logger    *slog.Logger // the group's
	lookups   map[string]*tableView

	// Key placement: the partition count is set before any engine runs.
	hasher             Hasher
	placement          *placement
	strictPartitioning bool

	// Where failures and misplaced records are reported and counted.
	metrics               *processorMetrics
	skipped, deadLettered *atomic.Int64

	batch *batchConfig // batch groups only
	// Exactly once, a concurrent input's emits wait for its offsets
	// (engineconcurrent.go).
	holdConcurrentEmits bool

	// The wall clock of tick and IdleAdvance (nil: time.Now), and how
	// long a partition stays idle before its stream time follows it (0:
	// never).
	now         func() time.Time
	idleAdvance time.Duration
}

// enginePartition is what an engine works on: its partition number, the
// stores of its table and joined tables, and its partition's counters.
type enginePartition struct {
	partition int32
	table     store.Store // nil for a group without a table
	// windows is the changelog topic of the group's window rows, ""
	// to write them to the table's, as sluicetest does.
	windows string
	joins   map[string]store.Store
	metrics *taskMetrics
	// ctx is what handlers see as Context() outside process: timers
	// fired by tick. nil: context.Background().
	ctx context.Context
	// reuseChangelog is set by a driver that lets go of the changelog
	// records endBatch returns, and of the slice, before it calls applied
	// (a Kafka task: the client drops a record once it acknowledged it),
	// so that the engine writes the next batches' records and keys over
	// them instead of allocating them anew.
	reuseChangelog bool
}

// engine runs the records of one partition number.
type engine[V any] struct {
	cfg       *engineConfig[V]
	partition int32
	table     string // the changelog topic
	// The windows' changelog topic; "" keeps the window rows in table.
	winTopic string
	st       store.Store
	joins    map[string]store.Store
	m        *taskMetrics
	logs     *slog.Logger

	rows  rowCache[V]
	dirty []string // keys changed by the batch in hand, in first-change order
	// The rows of dirty, in the same order: pinned, so the ones held.
	dirtyRows []*row[V]
	// What the record (or batch) being processed changed, to undo it if
	// it fails; recordDirty is len(dirty) when it began.
	undo        map[string]undoEntry[V]
	recordDirty int
	ctx         Context[V]

	// Records to write, not yet handed to the driver: outputs, loopbacks
	// and dead letters, in record order.
	out []*kgo.Record
	// How many records the last slice of them handed out for good held
	// (effects): the room the next one starts with.
	handedOut int
	// Row changes written to the changelog, not yet to the store, and
	// the ranges of purged windows to delete with them (windowlog.go).
	pending       []store.Change
	pendingRanges []store.Range
	// The store's range deletes, nil if it has none.
	ranges store.RangeDeleter
	// The changelog records and keys of the batches written since the
	// store was last updated, and the slice endBatch returns; reused once
	// applied if reuseChangelog, else made anew.
	clKeys         []byte
	clRecs         []kgo.Record
	clOut          []*kgo.Record
	reuseChangelog bool

	// Stream time in Unix nanoseconds (noStreamTime before the first
	// record), and the timers of a group with a timer handler (nil
	// otherwise): see enginetimer.go.
	stream  int64
	tm      *timerState
	win     *windowState // nil for a group without windows
	now     func() time.Time
	baseCtx context.Context
	// With IdleAdvance: when the last records were processed, on the wall
	// clock, and the stream time then.
	idleFrom   time.Time
	idleStream int64

	cc *ccEngine[V] // concurrent inputs, nil without (engineconcurrent.go)
}

func newEngine[V any](cfg *engineConfig[V], part enginePartition) *engine[V] {
	e := &engine[V]{
		cfg:       cfg,
		partition: part.partition,
		table:     cfg.group.TableTopic(),
		winTopic:  part.windows,
		st:        part.table,
		joins:     part.joins,
		m:         part.metrics,
		logs:      cfg.logger.With("partition", part.partition),
		rows:      newRowCache[V](cfg.cacheRows, cfg.group.rowsByValue),
		undo:      make(map[string]undoEntry[V]),
		stream:    noStreamTime,
		now:       cfg.now,
		baseCtx:   part.ctx,

		reuseChangelog: part.reuseChangelog,
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.baseCtx == nil {
		e.baseCtx = context.Background()
	}
	// Stream time is kept in the table of a group with timers or windows.
	if (cfg.group.onTimer != nil || len(cfg.group.windows) > 0) && part.table != nil {
		e.tm = &timerState{unapplied: make(map[string]struct{}), indexLimit: timerIndexPerRow * cfg.cacheRows}
	}
	if len(cfg.group.windows) > 0 && part.table != nil {
		e.ranges, _ = part.table.(store.RangeDeleter)
		e.win = newWindowState(len(cfg.group.windows), cfg.cacheRows)
		*e.rows.released = e.windowRowReleased
		e.rows.win = newWindowRows[V](cfg.cacheRows)
	}
	e.ctx.e = e
	e.ctx.io = e
	e.ctx.logs = e.logs
	e.cc = newCCEngine(e)
	return e
}

// process runs the handlers of recs, which all come from one topic
// partition, in order, collecting their effects. It returns how many
// records it processed and, if the error policy stopped at a record (Fail),
// the error: that record, recs[done], left no effects, and the effects of
// those before it are kept. ctx is what handlers see as Context().
func (e *engine[V]) process(ctx context.Context, recs []*kgo.Record) (done int, err error) {
	in := e.cfg.inputs[recs[0].Topic]
	if in == nil {
		return 0, nil
	}
	c := &e.ctx
	c.ctx = ctx
	// A record shares its fetch's buffer: the context lets go of the last
	// one, so that an engine between batches holds no fetch.
	defer func() { c.rec = nil }()
	e.m.took(recs)
	if e.tm != nil {
		if err := e.loadTimers(); err != nil {
			return 0, err
		}
	}
	if e.cfg.idleAdvance > 0 {
		defer func() { e.idleFrom, e.idleStream = e.now(), e.stream }()
	}
	for i, r := range recs {
		// A timestamp stream time cannot hold leaves it alone.
		ts, at := e.stream, r.Timestamp
		if ns, ok := streamNanos(at); ok {
			ts = ns
		}
		if in.loop {
			if lt, ok := loopTime(r); ok {
				ts, at = lt, time.Unix(0, lt)
			}
		}
		// An input with RecordTime decodes the record first, for its
		// time; one that does not decode leaves stream time alone.
		var handle func() error
		var derr error
		if in.decodeAt != nil {
			c.rec, c.key, c.at = r, string(r.Key), at
			if ts, handle, derr = in.decodeAt(c, r); derr != nil {
				ts = e.stream
			} else {
				at = time.Unix(0, ts)
			}
		}
		// Stream time moves before the record, and the windows and
		// timers it passes close and fire before it.
		if ts > e.stream || e.due() {
			if err := e.advance(ts); err != nil {
				clear(e.undo)
				return i, err
			}
		}
		c.rec = r
		c.key = string(r.Key)
		c.at = at
		c.err = nil
		e.recordDirty = len(e.dirty)
		emitted := len(e.out)
		err := e.checkPlacement(r)
		if err == nil && reservedKey(r.Key) {
			err = errReservedKey
		}
		if err == nil {
			err = derr
		}
		if err == nil {
			err = e.call(in, r, handle)
		}
		if err == nil {
			err = c.err
		}
		if err != nil {
			// A record's emits leave only once its handler succeeded.
			clear(e.out[emitted:])
			e.out = e.out[:emitted]
			if err := e.failed(r, err); err != nil {
				clear(e.undo)
				return i, err
			}
		}
		if len(e.undo) > 0 {
			clear(e.undo)
		}
	}
	return len(recs), nil
}

// call runs the handler, turning a panic into an error: handle, the
// handler's call with the value decodeAt decoded, or else the input's.
func (e *engine[V]) call(in *inputEdge[V], r *kgo.Record, handle func() error) (err error) {
	if e.m.timed {
		defer e.m.handled(time.Now())
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if handle != nil {
		return handle()
	}
	return in.decode(&e.ctx, r.Value)
}

// failed undoes what the failed record r changed and applies the error
// policy; it returns the error that stops the partition under Fail.
func (e *engine[V]) failed(r *kgo.Record, err error) error {
	e.undoRecord()
	rerr := &RecordError{Group: e.cfg.group.name, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Err: err}
	if !e.stopping() {
		e.cfg.metrics.recordFailed(e.partition, e.cfg.policy.kind, rerr)
	}
	return e.onFailure([]*kgo.Record{r}, rerr)
}

// errStopping is why an engine stops at a record, a batch or a timer that
// failed while the processor was stopping.
var errStopping = errors.New("the processor is stopping")

// stopping reports whether the processor is stopping: the context its
// handlers see is done.
func (e *engine[V]) stopping() bool { return e.baseCtx.Err() != nil }

// onFailure applies the error policy to recs, which failed with err (a
// *RecordError or a *BatchError) and whose changes are undone already: Skip
// counts and logs them, DeadLetter adds their dead letters to the effects,
// and Fail returns err, which stops the partition. While the processor is
// stopping no policy applies: the returned error wraps errStopping.
func (e *engine[V]) onFailure(recs []*kgo.Record, err error) error {
	if e.stopping() {
		// A handler whose context the stop cancelled may fail for that
		// alone: the failure is the stop's, not its record's. Whatever
		// the policy, the records are left uncommitted, for the next run.
		return fmt.Errorf("%w: %w", errStopping, err)
	}
	what := "record"
	var berr *BatchError
	if errors.As(err, &berr) {
		what = "batch"
	}
	switch policy := e.cfg.policy; policy.kind {
	case skipPolicy:
		e.cfg.skipped.Add(int64(len(recs)))
		e.logs.Warn(what+" skipped", "records", len(recs), "err", err)
		return nil
	case deadLetterPolicy:
		e.cfg.deadLettered.Add(int64(len(recs)))
		e.logs.Warn(what+" dead-lettered", "records", len(recs), "to", policy.topic, "err", err)
		for _, r := range recs {
			e.out = append(e.out, deadLetter(policy.topic, e.cfg.group.name, r, err))
		}
		return nil
	default:
		return err
	}
}

// taskIO

func (e *engine[V]) group() string { return e.cfg.group.name }

func (e *engine[V]) emit(owner any, r *kgo.Record) error {
	if owner != any(e.cfg.group) {
		return fmt.Errorf("group %s does not declare output %s (its handle belongs to another group)", e.cfg.group.name, r.Topic)
	}
	if e.out == nil && e.handedOut > 0 {
		// The last call's slice went with its records: room for as many
		// at once, not the doublings that lead there.
		e.out = make([]*kgo.Record, 0, e.handedOut)
	}
	e.out = append(e.out, r)
	return nil
}

func (e *engine[V]) joined(topic string) (store.Store, error) {
	st, ok := e.joins[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not join table %s", e.cfg.group.name, topic)
	}
	return st, nil
}

func (e *engine[V]) lookup(topic string) (*tableView, error) {
	tv, ok := e.cfg.lookups[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not look up table %s", e.cfg.group.name, topic)
	}
	return tv, nil
}
