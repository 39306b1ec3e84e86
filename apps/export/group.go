package export

// The export group: counter updates go into tumbling buckets of event time,
// where only each key's latest value survives (LatestValue); when a bucket
// closes, each key's value becomes one Event.
//
// Where the events go decides how they are kept:
//   - To a Kafka topic (GroupConfig.Topic): the event is an output of the
//     batch that closes the bucket, written with it and, under exactly
//     once, in its transaction. Nothing is pending.
//   - To a Sink (GroupConfig.Exporter): the event is appended to the
//     pending row of its key in the group's table, in the same batch, and
//     handed to the Exporter, which sends it from its own goroutine. The
//     row is cleared only once the sink accepted the event. So every event
//     is, at every moment, accepted by the sink or in a pending row that is
//     durable before the input offsets past its bucket are committed: a
//     SIGKILL loses nothing.
//
// The close of the key's next bucket, which writes the row anyway, asks the
// Exporter about each of the row's earlier events: an accepted one is
// cleared, one the Exporter does not know (it restarted, or the partition
// came from another processor) is handed to it again. A pending row also
// carries a timer of stream time (ResendAfter, by default twice the
// bucket), for the keys whose updates stop: set when the row has none
// ahead, not at every close, so that a key updated in every bucket writes
// its row once per event and its timer once per two buckets, not an event's
// row and timer twice each. When it fires, the group asks the same of each
// event, and the timer is set again while any remains, twice as far each
// time the events were still waiting in the Exporter (up to 16 times). With
// IdleAdvance, stream time follows the wall clock when the input stops, so
// rows are cleared and re-sent then too.
//
// While the Exporter holds PendingLimit events, the input handler waits
// for it to catch up, up to MaxPause, before it takes the next update,
// which holds back the partition's input (the Exporter logs and sets its
// paused metric).
// The bucket that an update closes is handed over before the wait, so the
// sink always has the events it needs to catch up.

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// The defaults of GroupConfig.
const (
	// DefaultGroup is the default name of the export group.
	DefaultGroup = "export"
	// DefaultInput is the default input topic: key = stats key, value =
	// the counter's new value as decimal text.
	DefaultInput = "stats-updates"
	// DefaultBucket is the default bucket size.
	DefaultBucket = 10 * time.Second
)

// Aggregation is the name of the group's windowed aggregation, whose open
// buckets a sluice.WindowView can read from the group's table.
const Aggregation = "latest"

// resendTimer is the name of the timer of a pending row.
const resendTimer = "pending"

// GroupConfig configures DefineGroup. Exactly one of Exporter and Topic is
// set.
type GroupConfig struct {
	// Name is the group's name; its table is Name + "-table". Default
	// "export".
	Name string
	// Input is the topic of counter updates. Default "stats-updates".
	Input string
	// Bucket is the size of the tumbling buckets of event time (the
	// records' Kafka timestamps), a whole number of seconds, as time_gen
	// has seconds. Default 10s.
	Bucket time.Duration
	// Grace is how long a bucket stays open after its end for updates that
	// arrive out of order; an update later than that fails as late under
	// the processor's error policy. Default 0.
	Grace time.Duration
	// Exporter, if set, receives the events, which stay pending in the
	// group's table until its sink accepts them.
	Exporter *Exporter
	// Topic, if set, is the Kafka topic the events are written to, keyed by
	// event id, with the batch that closes their bucket (in its
	// transaction under exactly once).
	Topic string
	// ResendAfter is the stream time after which a pending row's events are
	// checked, unless the key's next bucket closes first: cleared if
	// accepted, handed to the Exporter again if it does not know them.
	// Longer than Bucket, the close of a key's next bucket clears its
	// accepted events, and the timer serves only the keys whose updates
	// stopped. Default: twice Bucket.
	ResendAfter time.Duration
	// Metrics, if set, registers the group's metrics. Default: none.
	Metrics prometheus.Registerer
}

// Pending is a row of the export group's table: the events of its key that
// the sink has not accepted yet, oldest bucket first. An event is kept as
// its bucket's end and value, about 50 bytes, so that a key whose events
// pile up while the sink is down for a day of 10 s buckets still has a row
// well within a Kafka record; the event is made again from the row's key.
type Pending struct {
	Buckets []PendingBucket `json:"buckets"`
	// Rechecks counts the checks in a row that found the events still
	// waiting in the Exporter: each doubles the time to the next check, up
	// to 16 times ResendAfter, so that a sink that is down for long does
	// not make every pending row write its timer every ResendAfter.
	Rechecks int `json:"rechecks,omitempty"`
	// Armed is the stream time the row's timer is set for. The close of
	// the key's next bucket before then leaves the timer as it is and
	// clears the events the sink has accepted meanwhile.
	Armed time.Time `json:"armed,omitzero"`
}

// maxRecheckShift caps the doubling of the time between checks.
const maxRecheckShift = 4

// recheckAfter is the stream time to the next check of a row.
func (x *group) recheckAfter(rechecks int) time.Duration {
	return x.cfg.ResendAfter << min(rechecks, maxRecheckShift)
}

// PendingBucket is a pending event: its bucket's end and its value.
type PendingBucket struct {
	End   time.Time `json:"end"`
	Value int64     `json:"value"`
}

// group holds what the group's handlers share.
type group struct {
	cfg GroupConfig
	win *sluice.Windowed[int64, sluice.Timestamped[int64]]
	out *sluice.OutputTopic[[]byte] // the events' JSON
	m   *groupMetrics
}

// DefineGroup defines the export group. Run its processor with
// sluice.IdleAdvance, so that the last bucket closes, and its events are
// shipped, when updates stop. A definition the group cannot run with (a
// name or topic Kafka refuses, a Topic that is the input) is an error.
func DefineGroup(cfg GroupConfig) (*sluice.Group[Pending], error) {
	cfg = cfg.withDefaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if (cfg.Exporter == nil) == (cfg.Topic == "") {
		return nil, errors.New("export group: want either an exporter or a topic")
	}
	m, err := newGroupMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("export group: %w", err)
	}
	g := (&group{cfg: cfg, m: m}).define()
	// A name Kafka refuses, or a topic used twice, fails here rather than
	// when its processor runs.
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// withDefaults returns cfg with the defaults in place of zero values.
func (cfg GroupConfig) withDefaults() GroupConfig {
	if cfg.Name == "" {
		cfg.Name = DefaultGroup
	}
	if cfg.Input == "" {
		cfg.Input = DefaultInput
	}
	if cfg.Bucket == 0 {
		cfg.Bucket = DefaultBucket
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 2 * cfg.Bucket
	}
	return cfg
}

// define defines the group of x.cfg, whose defaults are set: an output to
// its Topic, or a timer that hands pending rows to its Exporter again.
func (x *group) define() *sluice.Group[Pending] {
	cfg := x.cfg
	g := sluice.DefineGroup[Pending](cfg.Name)
	sluice.Persist(g, PendingCodec())
	x.win = sluice.Aggregate(g, Aggregation, sluice.Tumbling(cfg.Bucket).Grace(cfg.Grace), sluice.LatestValue(codec.Int64()), x.closed)
	sluice.Input(g, cfg.Input, codec.Int64(), x.update)
	if cfg.Topic != "" {
		x.out = sluice.Output(g, cfg.Topic, codec.Bytes())
	} else {
		sluice.OnTimer(g, x.recheck)
	}
	return g
}

// Check returns the error DefineGroup would return for the bucket and the
// grace of cfg: a bucket that is not a whole number of seconds (zero is
// the default's), a negative grace.
func (cfg GroupConfig) Check() error {
	switch {
	case cfg.Bucket != 0 && (cfg.Bucket < time.Second || cfg.Bucket%time.Second != 0):
		return fmt.Errorf("export group: bucket %s: want a whole number of seconds", cfg.Bucket)
	case cfg.Grace < 0:
		return fmt.Errorf("export group: grace %s: want it not negative", cfg.Grace)
	}
	return nil
}

// update takes a counter update into its bucket. An unparsable key fails
// the record, with the parser's reason, under the error policy; keys of
// periods that are not exported are counted and dropped.
func (x *group) update(ctx *sluice.Context[Pending], v int64) error {
	k, err := ParseStatsKey(ctx.Key())
	if err != nil {
		return err
	}
	if !k.Exported() {
		x.m.skipped.WithLabelValues(k.Period.String()).Inc()
		return nil
	}
	if x.cfg.Exporter != nil {
		x.cfg.Exporter.waitForRoom(ctx.Context())
	}
	if err := x.win.Add(ctx, v); err != nil {
		return err
	}
	x.m.in.Inc()
	return nil
}

// closed turns a closed bucket's latest value of a key into its event.
func (x *group) closed(ctx *sluice.Context[Pending], r sluice.WindowResult[sluice.Timestamped[int64]]) error {
	if !r.Final || !r.Value.Set {
		return nil
	}
	k, err := ParseStatsKey(r.Key)
	if err != nil {
		return err // update let no such key in
	}
	x.m.lag.Set(time.Since(r.Window.End).Seconds())
	end := r.Window.End.UTC()
	line := eventLine(&k, r.Key, r.Value.Value, end)
	if x.out != nil {
		// Kafka would refuse a larger record and the processor retry it
		// for ever; the error policy takes it instead.
		id := EventID(r.Key, end)
		if len(line) > DefaultMaxRecordBytes {
			return fmt.Errorf("event %s: %d bytes, more than a record's %d", id, len(line), DefaultMaxRecordBytes)
		}
		// The record's value is the event's JSON, without the line's end.
		if err := x.out.Emit(ctx, id, line[:len(line)-1]); err != nil {
			return err
		}
		x.m.out.Inc()
		return nil
	}
	// Handed over first: an event too large for any record fails here,
	// before it is made pending, so that it does not stay pending forever.
	if err := x.cfg.Exporter.offer(EventID(r.Key, end), line); err != nil {
		return err
	}
	p, _ := ctx.Value()
	keep, _, err := x.settle(&k, r.Key, p.Buckets)
	if err != nil {
		return err
	}
	p.Buckets = append(keep, PendingBucket{End: end, Value: r.Value.Value})
	p.Rechecks = 0
	// A timer still ahead checks the new event with the others.
	if now := ctx.StreamTime(); !p.Armed.After(now) {
		p.Armed = now.Add(x.cfg.ResendAfter).UTC()
		ctx.SetTimer(resendTimer, p.Armed)
	}
	ctx.SetValue(p)
	x.m.out.Inc()
	return nil
}

// settle returns the events of buckets the sink has not accepted, handing
// the Exporter again those it does not know, and whether any is still
// waiting in the Exporter. buckets, the handler's own decoded row, is
// filtered in place.
func (x *group) settle(k *StatsKey, key string, buckets []PendingBucket) (keep []PendingBucket, waiting bool, err error) {
	keep = buckets[:0]
	for _, b := range buckets {
		// The event's line is made only to hand it over again.
		id := EventID(key, b.End)
		switch x.cfg.Exporter.status(id) {
		case statusAccepted:
			continue
		case statusPending:
			waiting = true
		case statusUnknown:
			if err := x.cfg.Exporter.offer(id, eventLine(k, key, b.Value, b.End)); err != nil {
				return nil, false, err
			}
		}
		keep = append(keep, b)
	}
	return keep, waiting, nil
}

// recheck clears the accepted events of a pending row and hands the
// Exporter those it does not know.
func (x *group) recheck(ctx *sluice.Context[Pending], t sluice.Timer) error {
	if t.Name != resendTimer {
		return nil
	}
	p, ok := ctx.Value()
	if !ok {
		return nil
	}
	k, err := ParseStatsKey(ctx.Key())
	if err != nil {
		return err // update let no such key in
	}
	keep, waiting, err := x.settle(&k, ctx.Key(), p.Buckets)
	if err != nil {
		return err
	}
	if len(keep) == 0 {
		ctx.Delete()
		return nil
	}
	rechecks := 0
	if waiting {
		rechecks = p.Rechecks + 1
	}
	armed := ctx.StreamTime().Add(x.recheckAfter(rechecks)).UTC()
	ctx.SetValue(Pending{Buckets: keep, Rechecks: rechecks, Armed: armed})
	ctx.SetTimer(resendTimer, armed)
	return nil
}
