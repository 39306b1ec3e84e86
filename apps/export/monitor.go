package export

// What the web monitor shows of an export: the Exporter's pending events
// against its limit, whether the input is paused, and its sink's health
// (Health); the events through the group, read from its metrics; and the
// Export page that draws them.
//
// The last success and the last error of the sink are noted by a wrapper
// of the Sink (watchSink) that Run puts between the Exporter and its sink,
// so that the Exporter's sending loop needs no change for them.

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-io/sluice/web"
)

// ExportPage is the name of the Export page: the monitor serves it at
// /pages/export/ and its API, GET /status, under /api/pages/export/.
const ExportPage = "export"

// Health is what an Exporter knows of its sink, as the web monitor's
// Export page shows it.
type Health struct {
	// Pending counts the events handed to the Exporter that the sink has
	// not accepted yet.
	Pending int `json:"pending"`
	// PendingLimit is ExporterConfig.PendingLimit: at it the input pauses.
	PendingLimit int `json:"pendingLimit"`
	// ResumeAt is the Pending at or below which paused input resumes.
	ResumeAt int `json:"resumeAt"`
	// Paused reports whether the input waits for the sink to catch up.
	Paused bool `json:"paused"`
	// EventsSent counts the events the sink accepted.
	EventsSent int64 `json:"eventsSent"`
	// Calls counts the calls made to the sink, failed ones included, and
	// Records the records in them, those sent again included.
	Calls   int64 `json:"calls"`
	Records int64 `json:"records"`
	// Errors counts the sink's failures by kind: "call" for a call that
	// failed as a whole, "record" for a record it did not accept.
	Errors map[string]int64 `json:"errors"`
	// LastSuccess is when the sink last accepted a whole call, nil before
	// it did or when the Exporter was not made by Run.
	LastSuccess *time.Time `json:"lastSuccess"`
	// LastError is the sink's last failure, nil before there was one or
	// when the Exporter was not made by Run.
	LastError *SinkFailure `json:"lastError"`
}

// SinkFailure is a failed call or a record the sink did not accept.
type SinkFailure struct {
	Time time.Time `json:"time"`
	// Kind is "call" or "record", as in Health.Errors.
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Health returns what the Exporter knows of its sink now.
func (x *Exporter) Health() Health {
	x.mu.Lock()
	h := Health{Pending: x.pending, PendingLimit: x.cfg.PendingLimit, ResumeAt: x.resumeAt(), Paused: x.paused}
	x.mu.Unlock()
	h.EventsSent = counterValue(x.m.events)
	h.Calls = counterValue(x.m.calls)
	h.Records = counterValue(x.m.records)
	h.Errors = map[string]int64{}
	for _, m := range collect(x.m.errors) {
		for _, l := range m.GetLabel() {
			if l.GetName() == "kind" {
				h.Errors[l.GetValue()] += int64(m.GetCounter().GetValue())
			}
		}
	}
	if w, ok := x.sink.(*watchedSink); ok {
		h.LastSuccess, h.LastError = w.last()
	}
	return h
}

// watchedSink notes the outcome of the calls of the Sink it wraps.
type watchedSink struct {
	Sink

	mu      sync.Mutex
	success time.Time
	failure SinkFailure
}

// watchSink wraps s so that Health knows its last success and error.
func watchSink(s Sink) Sink {
	if s == nil {
		return nil
	}
	return &watchedSink{Sink: s}
}

// Put calls the wrapped sink and notes how it went.
func (w *watchedSink) Put(ctx context.Context, records []Record) ([]error, error) {
	errs, err := w.Sink.Put(ctx, records)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failure = SinkFailure{Time: now, Kind: "call", Message: err.Error()}
		return errs, err
	}
	if rerr := firstError(errs); rerr != nil {
		w.failure = SinkFailure{Time: now, Kind: "record", Message: rerr.Error()}
		return errs, err
	}
	w.success = now
	return errs, err
}

// Close closes the wrapped sink if it is an io.Closer.
func (w *watchedSink) Close() error {
	if c, ok := w.Sink.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (w *watchedSink) last() (*time.Time, *SinkFailure) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var (
		success *time.Time
		failure *SinkFailure
	)
	if !w.success.IsZero() {
		s := w.success
		success = &s
	}
	if !w.failure.Time.IsZero() {
		f := w.failure
		failure = &f
	}
	return success, failure
}

func counterValue(c prometheus.Counter) int64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// collect returns the metrics c has now.
func collect(c prometheus.Collector) []*dto.Metric {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out []*dto.Metric
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			out = append(out, &d)
		}
	}
	return out
}

// flow is what the group's metrics say of the updates and events through
// it.
type flow struct {
	// UpdatesIn counts the updates taken into buckets, Skipped those of
	// periods not exported, EventsOut the events made of closed buckets.
	UpdatesIn int64 `json:"updatesIn"`
	Skipped   int64 `json:"skipped"`
	EventsOut int64 `json:"eventsOut"`
	// Deduped is UpdatesIn less EventsOut: the updates deduped away, and
	// those still in buckets that have not closed.
	Deduped int64 `json:"deduped"`
	// BucketLag is the wall time since the end of the bucket that closed
	// last, in seconds; nil before one closed.
	BucketLag *float64 `json:"bucketLagSeconds"`
}

// status is what GET /status of the Export page answers.
type status struct {
	// Group is nil when the metrics are not at hand.
	Group *flow `json:"group"`
	// Sink is nil when the events go to a Kafka topic.
	Sink *Health `json:"sink"`
}

// flowOf reads the group's metrics from g.
func flowOf(g prometheus.Gatherer) (*flow, error) {
	families, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather the export's metrics: %w", err)
	}
	f := &flow{}
	found := false
	for _, fam := range families {
		sum := int64(0)
		for _, m := range fam.GetMetric() {
			sum += int64(m.GetCounter().GetValue())
		}
		switch fam.GetName() {
		case "sluice_export_updates_total":
			f.UpdatesIn, found = sum, true
		case "sluice_export_updates_skipped_total":
			f.Skipped = sum
		case "sluice_export_events_total":
			f.EventsOut = sum
		case "sluice_export_bucket_lag_seconds":
			if ms := fam.GetMetric(); len(ms) == 1 && ms[0].GetGauge().GetValue() != 0 {
				lag := ms[0].GetGauge().GetValue()
				f.BucketLag = &lag
			}
		}
	}
	if !found {
		return nil, nil
	}
	f.Deduped = max(f.UpdatesIn-f.EventsOut, 0)
	return f, nil
}

//go:embed monitor
var monitorAssets embed.FS

// MonitorPage returns the Export page of the web monitor: the pending
// events against the pending limit, with a chart of them since the page
// opened, whether the input is paused, the updates in, deduped and events
// out, and the sink's health: events accepted, calls, errors by kind, and
// the last success and error. x is the Exporter, nil when the events go to
// a Kafka topic; g, if not nil, gathers the group's metrics (the Registry
// of Config.Metrics). Its API answers GET /status with all of it as JSON.
func MonitorPage(x *Exporter, g prometheus.Gatherer) web.Page {
	api := http.NewServeMux()
	api.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		var s status
		if g != nil {
			f, err := flowOf(g)
			if err != nil {
				web.WriteError(w, http.StatusInternalServerError, err.Error())
				return
			}
			s.Group = f
		}
		if x != nil {
			h := x.Health()
			s.Sink = &h
		}
		web.WriteJSON(w, http.StatusOK, s)
	})
	api.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, http.StatusNotFound, fmt.Sprintf("no such address %s: the export page serves GET /status", r.URL.EscapedPath()))
	})
	// Sub fails only on an invalid name; the nil Assets it returns then
	// would make the monitor's Listen say so.
	assets, _ := fs.Sub(monitorAssets, "monitor")
	return web.Page{Name: ExportPage, Title: "Export", Assets: assets, API: api}
}
