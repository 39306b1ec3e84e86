package logdrain

// The route metrics group: it reads RouterTopic, keyed by path, and keeps
// per path the sums and counts of service and connect times and a count
// per status in its table, and per-minute windows of service times as
// DDSketches.
//
// Invariants:
//   - A route's row and its minute windows change in the same handler
//     call, so they are written to the table's changelog in the same
//     batch and, exactly once, in the same transaction: a record counts in
//     both or in neither, however often the group restarts.
//   - Windows take a record by its Kafka timestamp, the time the drain
//     wrote it, not by the log line's timestamp: those times follow the
//     partition's offsets but for the skew between drain processes, which
//     Grace absorbs, so records are not late. A late record fails, and
//     under any error policy its sums are undone with it; by the log line's
//     timestamp every line Logplex sends again after a 503 could be late.
//     A drain writes a line within moments of the router logging it, so
//     the minute of arrival is the minute of the request but for such
//     lines.

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

const (
	// RoutesGroup is the route metrics group; its table, RoutesTable,
	// holds a RouteStats per path, and its windows topic, RoutesWindows,
	// the path's minute windows.
	RoutesGroup = "route-metrics"
	// RoutesTable is the group's table topic.
	RoutesTable = RoutesGroup + "-table"
	// RoutesWindows is the group's windows topic.
	RoutesWindows = RoutesGroup + "-windows"
	// MinutesAggregation names the group's windowed aggregation of service
	// times per minute.
	MinutesAggregation = "minutes"
	// RouteMinutesTopic receives each minute window of a path once it
	// closes, as RouteMinute JSON keyed by path.
	RouteMinutesTopic = "route-minutes"
	// RoutesDeadLetters receives the records of RouterTopic the group could
	// not read (not Record JSON, or not a router line), when Run runs it.
	RoutesDeadLetters = RoutesGroup + "-dead-letters"
)

// quantileAccuracy is the relative accuracy of the minute windows'
// sketches: a percentile is within 1% of the true value.
const quantileAccuracy = 0.01

// Timing is a sum and a count of times, in milliseconds.
type Timing struct {
	Sum   float64 `json:"sum"`
	Count int64   `json:"count"`
}

// Average is Sum / Count, 0 for no time at all.
func (t Timing) Average() float64 {
	if t.Count == 0 {
		return 0
	}
	return t.Sum / float64(t.Count)
}

func (t *Timing) add(ms *float64) {
	if ms != nil {
		t.Sum += *ms
		t.Count++
	}
}

// RouteStats is the row of a path in RoutesTable.
type RouteStats struct {
	// Requests counts the path's router lines.
	Requests int64 `json:"requests"`
	// Service and Connect sum the times of the lines that have them.
	Service Timing `json:"service"`
	Connect Timing `json:"connect"`
	// Statuses counts the lines by status code, in decimal; a line without
	// a status is not counted here.
	Statuses map[string]int64 `json:"statuses"`
}

// RouteMinute is a closed minute window of a path, as RouteMinutesTopic
// holds it: {"path":"/foo","start":…,"count":…,"p50":…,"p95":…,"p99":…}.
type RouteMinute struct {
	Path string `json:"path"`
	Minute
}

// RoutesConfig configures the route metrics group.
type RoutesConfig struct {
	// Grace is how long after its end a minute window still takes records
	// that arrive out of order across the drain's partitions. Default 10s.
	Grace time.Duration
	// Keep is how long after its start a minute window is kept for the
	// view, in stream time. Default 1h.
	Keep time.Duration
}

func (c *RoutesConfig) defaults() {
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	if c.Keep <= 0 {
		c.Keep = time.Hour
	}
	if c.Keep < time.Minute+c.Grace {
		c.Keep = time.Minute + c.Grace
	}
}

// errNotRouter is why the group fails a record of RouterTopic without
// router fields.
var errNotRouter = errors.New("not a router line: no router fields")

// minutesAggregator is the aggregator of the minute windows: a DDSketch of
// service times in milliseconds. Its error is Quantiles', which
// quantileAccuracy, a constant between 0 and 1, never causes.
func minutesAggregator() (sluice.Aggregator[Record, *sluice.QuantileSketch], error) {
	agg, err := sluice.Quantiles(quantileAccuracy, func(r Record) float64 { return *r.Router.ServiceMS })
	if err != nil {
		return agg, fmt.Errorf("route metrics: %w", err)
	}
	return agg, nil
}

// DefineRoutesGroup defines the route metrics group.
func DefineRoutesGroup(cfg RoutesConfig) (*sluice.Group[RouteStats], error) {
	cfg.defaults()
	agg, err := minutesAggregator()
	if err != nil {
		return nil, err
	}
	g := sluice.DefineGroup[RouteStats](RoutesGroup)
	sluice.Persist(g, codec.JSON[RouteStats]())
	windows := sluice.Tumbling(time.Minute).Grace(cfg.Grace).Retain(cfg.Keep)
	closed := sluice.Output(g, RouteMinutesTopic, codec.JSON[RouteMinute]())
	minutes := sluice.Aggregate(g, MinutesAggregation, windows, agg,
		func(ctx *sluice.Context[RouteStats], r sluice.WindowResult[*sluice.QuantileSketch]) error {
			m, err := minuteOf(r.Window, r.Value)
			if err != nil {
				return fmt.Errorf("minute %s of %q: %w", r.Window.Start.UTC().Format(time.RFC3339), r.Key, err)
			}
			return closed.Emit(ctx, r.Key, RouteMinute{Path: r.Key, Minute: m})
		})
	sluice.Input(g, RouterTopic, codec.JSON[Record](), func(ctx *sluice.Context[RouteStats], rec Record) error {
		r := rec.Router
		if r == nil {
			return errNotRouter
		}
		s, _ := ctx.Value()
		s.Requests++
		s.Service.add(r.ServiceMS)
		s.Connect.add(r.ConnectMS)
		if r.Status != 0 {
			if s.Statuses == nil {
				s.Statuses = map[string]int64{}
			}
			s.Statuses[strconv.Itoa(r.Status)]++
		}
		ctx.SetValue(s)
		if r.ServiceMS == nil {
			return nil
		}
		return minutes.Add(ctx, rec)
	})
	return g, nil
}
