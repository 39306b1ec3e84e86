package export

// The export's metrics, registered on the Registerer of its config when one
// is given, and kept in unregistered collectors otherwise, so that the code
// that counts never needs to ask.

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// exporterMetrics are the sink side's metrics.
type exporterMetrics struct {
	events  prometheus.Counter
	calls   prometheus.Counter
	records prometheus.Counter
	errors  *prometheus.CounterVec
	pending prometheus.Gauge
	paused  prometheus.Gauge
}

func newExporterMetrics(reg prometheus.Registerer) (*exporterMetrics, error) {
	m := &exporterMetrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_export_events_sent_total", Help: "Events the sink accepted.",
		}),
		calls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_export_calls_total", Help: "Calls made to the sink, failed ones included.",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_export_records_total", Help: "Records sent to the sink, those sent again included.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_export_sink_errors_total", Help: "Sink failures by kind: a failed call, or a record the sink did not accept.",
		}, []string{"kind"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_export_pending_events", Help: "Events handed to the sink side that the sink has not accepted yet.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_export_paused", Help: "1 while the input waits because pending events reached the pending limit.",
		}),
	}
	return m, register(reg, m.events, m.calls, m.records, m.errors, m.pending, m.paused)
}

// groupMetrics are the group side's metrics.
type groupMetrics struct {
	in      prometheus.Counter
	skipped *prometheus.CounterVec
	out     prometheus.Counter
	lag     prometheus.Gauge
}

func newGroupMetrics(reg prometheus.Registerer) (*groupMetrics, error) {
	m := &groupMetrics{
		in: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_export_updates_total", Help: "Counter updates taken into buckets; those not turned into events were deduped away.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_export_updates_skipped_total", Help: "Counter updates of periods that are not exported, by period.",
		}, []string{"period"}),
		out: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_export_events_total", Help: "Events made from closed buckets: the latest value of a key in a bucket.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_export_bucket_lag_seconds", Help: "Wall time since the end of the bucket that closed last.",
		}),
	}
	return m, register(reg, m.in, m.skipped, m.out, m.lag)
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register export metrics: %w", err)
		}
	}
	return nil
}
