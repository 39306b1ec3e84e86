package export

// The sink side of the export: an Exporter holds the events handed to it
// that its sink has not accepted yet, packs them into calls within the
// sink's limits, sends them from one goroutine (Run), and retries failed
// records and calls with exponential backoff and jitter.
//
// Invariants:
//   - An event the group hands over (offer) is also in a pending row of the
//     group's table, written with the batch that produced it; the Exporter
//     only remembers, in memory, which of those events are queued, in a
//     call, or accepted. Losing that memory (a crash, a partition moving)
//     only makes the group offer the event again: it is sent once more,
//     never lost.
//   - An event is in exactly one of queue (waiting), the call in flight, or
//     accepted, from offer until the group clears its row (settle).
//   - pending counts the queued events and those in flight: the events that
//     still need the sink. The group's input waits from when it reaches the
//     limit until it is a tenth below (resumeAt).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// ExporterConfig configures an Exporter. The zero value of every field
// takes the default it states.
type ExporterConfig struct {
	// Limits bound the records and calls the sink receives. Default:
	// Firehose's PutRecordBatch limits (see Limits).
	Limits Limits
	// BatchWait is how long the oldest waiting event waits for a call to
	// fill before a call that is not full is sent. Default 1s.
	BatchWait time.Duration
	// MinBackoff is the backoff after the first failure in a row; each
	// further failure doubles it, up to MaxBackoff, and the wait is a
	// random time between half of it and all of it. Default 100ms.
	MinBackoff time.Duration
	// MaxBackoff caps the backoff. Default 30s.
	MaxBackoff time.Duration
	// CallTimeout bounds one call to the sink. Default 30s.
	CallTimeout time.Duration
	// PendingLimit is how many events may wait for the sink before the
	// group stops taking input, until the sink catches up to a tenth below
	// it. Default 600,000.
	PendingLimit int
	// MaxPause is how long the input waits for room, while paused, before
	// it takes one update anyway: as a partition's handler does the
	// waiting, this bounds how long a rebalance of the partition waits
	// for it. A paused partition so takes at most one update per MaxPause,
	// which moves its stream time, and closes its buckets, next to never.
	// Default 1s.
	MaxPause time.Duration
	// Logger receives the exporter's logs: sink errors, pauses and resumes.
	// Default: discard.
	Logger *slog.Logger
	// Metrics, if set, registers the exporter's metrics. Default: none.
	Metrics prometheus.Registerer
}

// DefaultPendingLimit is the default of ExporterConfig.PendingLimit.
const DefaultPendingLimit = 600_000

func (c ExporterConfig) withDefaults() ExporterConfig {
	c.Limits = c.Limits.withDefaults()
	if c.BatchWait <= 0 {
		c.BatchWait = time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.PendingLimit <= 0 {
		c.PendingLimit = DefaultPendingLimit
	}
	if c.MaxPause <= 0 {
		c.MaxPause = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Exporter sends the events of an export group to a Sink. Create it with
// NewExporter, give it to the group (GroupConfig.Exporter) and run it with Run
// alongside the group's processor. It is safe for concurrent use.
type Exporter struct {
	sink Sink
	cfg  ExporterConfig
	m    *exporterMetrics

	mu       sync.Mutex
	queue    []*entry // waiting, oldest first
	queued   int      // bytes of the lines in queue
	byID     map[string]*entry
	accepted *lru.Cache[string, struct{}]
	pending  int
	paused   bool
	wake     chan struct{} // the sending loop: there is something to send
	room     chan struct{} // closed and renewed when pending falls below the limit
}

// entry is an event the exporter was handed and its sink has not accepted.
type entry struct {
	id    string
	line  []byte
	since time.Time // when it was queued
}

// eventStatus is what the exporter knows of an event.
type eventStatus int

const (
	statusUnknown  eventStatus = iota // not handed over, or forgotten
	statusPending                     // queued or in a call
	statusAccepted                    // the sink accepted it
)

// NewExporter returns an exporter to sink configured by cfg.
func NewExporter(sink Sink, cfg ExporterConfig) (*Exporter, error) {
	if sink == nil {
		return nil, errors.New("exporter: sink is nil")
	}
	if err := cfg.Limits.withDefaults().validate(); err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	cfg = cfg.withDefaults()
	// Accepted events are remembered until the group clears their rows;
	// the cache bounds that memory for rows whose partition moved away,
	// at worst sending an evicted event again.
	accepted, err := lru.New[string, struct{}](max(cfg.PendingLimit, 1024))
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	m, err := newExporterMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	return &Exporter{
		sink: sink, cfg: cfg, m: m,
		byID:     make(map[string]*entry),
		accepted: accepted,
		wake:     make(chan struct{}, 1),
		room:     make(chan struct{}),
	}, nil
}

// Pending returns the number of events handed to the exporter that its
// sink has not accepted yet.
func (x *Exporter) Pending() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.pending
}

// Paused reports whether the group's input is held back because Pending
// reached the pending limit.
func (x *Exporter) Paused() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.paused
}

// offer hands the exporter an event, unless it already has it. It fails
// if the line is too long for any record.
func (x *Exporter) offer(id string, line []byte) error {
	if len(line) > x.cfg.Limits.maxEventBytes() {
		return fmt.Errorf("event %s: %d bytes do not fit in a record of at most %d", id, len(line), x.cfg.Limits.MaxRecordBytes)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[id]; ok {
		return nil
	}
	if x.accepted.Contains(id) {
		return nil
	}
	e := &entry{id: id, line: line, since: time.Now()}
	x.byID[id] = e
	x.queue = append(x.queue, e)
	x.queued += len(line)
	x.pending++
	x.m.pending.Set(float64(x.pending))
	if x.pending >= x.cfg.PendingLimit && !x.paused {
		x.paused = true
		x.m.paused.Set(1)
		x.cfg.Logger.Warn("export paused: the sink is behind, input waits until it catches up", "pending", x.pending, "limit", x.cfg.PendingLimit)
	}
	select {
	case x.wake <- struct{}{}:
	default:
	}
	return nil
}

// status says what the exporter knows of event id; an accepted event is
// forgotten, as the group is about to clear it from its row.
func (x *Exporter) status(id string) eventStatus {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[id]; ok {
		return statusPending
	}
	if x.accepted.Remove(id) {
		return statusAccepted
	}
	return statusUnknown
}

// resumeAt is the pending count at or below which paused input resumes: a
// tenth below the limit, so that a sink that keeps up just barely does not
// pause and resume the input at every call.
func (x *Exporter) resumeAt() int {
	return x.cfg.PendingLimit - 1 - x.cfg.PendingLimit/10
}

// waitForRoom returns once pending is below the limit, ctx is done, or it
// has waited MaxPause.
func (x *Exporter) waitForRoom(ctx context.Context) {
	x.mu.Lock()
	paused, room := x.paused, x.room
	x.mu.Unlock()
	if !paused {
		return
	}
	t := time.NewTimer(x.cfg.MaxPause)
	defer t.Stop()
	select {
	case <-room:
	case <-t.C:
	case <-ctx.Done():
	}
}

// Run sends the events handed to the exporter until ctx is done, retrying
// failed records and calls with backoff; it returns nil then, and closes
// the sink if it is an io.Closer. Events not yet accepted stay pending in
// the group's table and are sent after a restart.
func (x *Exporter) Run(ctx context.Context) error {
	defer func() {
		if c, ok := x.sink.(io.Closer); ok {
			if err := c.Close(); err != nil {
				x.cfg.Logger.Error("export: close sink", "err", err)
			}
		}
	}()
	failures := 0
	for {
		call, ok := x.nextCall(ctx)
		if !ok {
			return nil
		}
		rejected, err := x.send(ctx, call)
		if err != nil || rejected > 0 {
			failures++
			if !sleep(ctx, x.backoff(failures)) {
				return nil
			}
			continue
		}
		failures = 0
	}
}

// call is the records of one call and the events each holds.
type call struct {
	records []Record
	events  [][]*entry
}

// nextCall waits until a call is due, a full one or one whose oldest event
// has waited BatchWait, and takes its events from the queue.
func (x *Exporter) nextCall(ctx context.Context) (call, bool) {
	l := x.cfg.Limits
	for {
		x.mu.Lock()
		var wait time.Duration
		if n := len(x.queue); n > 0 {
			full := x.queued >= l.MaxCallBytes || n >= l.MaxRecordsPerCall*l.MaxEventsPerRecord
			wait = x.cfg.BatchWait - time.Since(x.queue[0].since)
			if full || wait <= 0 {
				c := x.take()
				x.mu.Unlock()
				return c, true
			}
		}
		x.mu.Unlock()
		var (
			timeout <-chan time.Time
			t       *time.Timer
		)
		if wait > 0 {
			t = time.NewTimer(wait)
			timeout = t.C
		}
		select {
		case <-ctx.Done():
			return call{}, false
		case <-x.wake:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// take packs the front of the queue into a call; x.mu is held.
func (x *Exporter) take() call {
	// The lines that may fit in a call: no more than its events, nor past
	// its bytes.
	l := x.cfg.Limits
	n, size := 0, 0
	for n < len(x.queue) && n < l.MaxRecordsPerCall*l.MaxEventsPerRecord && size+len(x.queue[n].line) <= l.MaxCallBytes {
		size += len(x.queue[n].line)
		n++
	}
	lines := make([][]byte, 0, n)
	for _, e := range x.queue[:n] {
		lines = append(lines, e.line)
	}
	records, used := l.pack(lines)
	c := call{records: records, events: make([][]*entry, len(records))}
	i := 0
	for r, rec := range records {
		c.events[r] = x.queue[i : i+rec.Events : i+rec.Events]
		i += rec.Events
	}
	for _, e := range x.queue[:used] {
		x.queued -= len(e.line)
	}
	x.queue = x.queue[used:]
	return c
}

// send makes one call and settles its events: accepted ones leave pending,
// the others go back to the front of the queue, in order. It returns how
// many records were not accepted, or the call's error.
func (x *Exporter) send(ctx context.Context, c call) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, x.cfg.CallTimeout)
	errs, err := x.sink.Put(cctx, c.records)
	cancel()
	if err == nil && errs != nil && len(errs) != len(c.records) {
		err = fmt.Errorf("sink answered for %d records of %d", len(errs), len(c.records))
	}
	x.m.calls.Inc()
	x.m.records.Add(float64(len(c.records)))
	var back []*entry
	rejected := 0
	x.mu.Lock()
	for r := range c.records {
		var rerr error
		if err == nil && errs != nil {
			rerr = errs[r]
		}
		events := c.events[r]
		if err != nil || rerr != nil {
			rejected++
			if err == nil {
				x.m.errors.WithLabelValues("record").Inc()
			}
			notTaken := events
			var le *LinesError
			if err == nil && errors.As(rerr, &le) {
				notTaken = linesOf(events, le.Lines)
			}
			back = append(back, notTaken...)
			events = without(events, notTaken)
		}
		for _, e := range events {
			delete(x.byID, e.id)
			x.accepted.Add(e.id, struct{}{})
			x.pending--
		}
		x.m.events.Add(float64(len(events)))
	}
	for _, e := range back {
		x.queued += len(e.line)
	}
	x.queue = append(back, x.queue...)
	x.m.pending.Set(float64(x.pending))
	if x.paused && x.pending <= x.resumeAt() {
		x.paused = false
		x.m.paused.Set(0)
		close(x.room)
		x.room = make(chan struct{})
		x.cfg.Logger.Info("export resumed: the sink caught up", "pending", x.pending, "limit", x.cfg.PendingLimit)
	}
	x.mu.Unlock()
	switch {
	case err != nil:
		x.m.errors.WithLabelValues("call").Inc()
		x.cfg.Logger.Warn("export: sink call failed, retrying", "records", len(c.records), "err", err)
		return rejected, err
	case rejected > 0:
		x.cfg.Logger.Warn("export: sink rejected records, retrying", "rejected", rejected, "records", len(c.records), "first", firstError(errs))
	}
	return rejected, nil
}

// linesOf returns the events at the valid indexes lines, which increase.
func linesOf(events []*entry, lines []int) []*entry {
	var out []*entry
	for _, l := range lines {
		if l >= 0 && l < len(events) {
			out = append(out, events[l])
		}
	}
	return out
}

// without returns events less those in drop, a subsequence of events.
func without(events, drop []*entry) []*entry {
	if len(drop) == len(events) {
		return nil
	}
	out := make([]*entry, 0, len(events)-len(drop))
	i := 0
	for _, e := range events {
		if i < len(drop) && drop[i] == e {
			i++
			continue
		}
		out = append(out, e)
	}
	return out
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// backoff is the wait after failures failures in a row: MinBackoff doubled
// per failure up to MaxBackoff, of which a random half is taken off so
// that exporters that failed together do not retry together.
func (x *Exporter) backoff(failures int) time.Duration {
	d := x.cfg.MinBackoff
	for i := 1; i < failures && d < x.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, x.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
