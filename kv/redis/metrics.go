package redis

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The operations metrics are kept for, in label order.
const (
	opGet = iota
	opGetMany
	opPut
	opPutMany
	opDelete
	numOps
)

var opNames = [numOps]string{"get", "get_many", "put", "put_many", "delete"}

// durationBuckets run from 100µs, a round trip to a local Redis, to about
// 6.5s, a batch of many thousand keys over a slow link.
var durationBuckets = prometheus.ExponentialBuckets(0.0001, 4, 9)

// opMetrics are one operation's metrics of one store.
type opMetrics struct {
	calls    prometheus.Counter
	errors   prometheus.Counter
	duration prometheus.Observer
}

// metrics are a store's metrics; a nil *metrics records nothing.
type metrics struct {
	ops [numOps]opMetrics
}

// newMetrics registers the metric vectors with reg, or uses the ones
// registered there already by another store, and returns the series of the
// store named name.
func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	calls, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_kv_operations_total",
		Help: "Operations called on a key-value store.",
	}, []string{"store", "op"}))
	if err != nil {
		return nil, err
	}
	errs, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_kv_operation_errors_total",
		Help: "Operations on a key-value store that returned an error.",
	}, []string{"store", "op"}))
	if err != nil {
		return nil, err
	}
	durations, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_kv_operation_duration_seconds",
		Help:    "Duration of operations on a key-value store.",
		Buckets: durationBuckets,
	}, []string{"store", "op"}))
	if err != nil {
		return nil, err
	}
	m := new(metrics)
	for op, opName := range opNames {
		m.ops[op] = opMetrics{
			calls:    calls.WithLabelValues(name, opName),
			errors:   errs.WithLabelValues(name, opName),
			duration: durations.WithLabelValues(name, opName),
		}
	}
	return m, nil
}

// register registers c with reg and returns it, or returns the collector of
// the same kind that reg holds already under c's name and labels.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("register metrics: %w", err)
}

// done records one call of op that started at start and returned *err. It
// is meant to be deferred, so that it sees the error the call returns.
func (m *metrics) done(op int, start time.Time, err *error) {
	if m == nil {
		return
	}
	o := &m.ops[op]
	o.calls.Inc()
	if *err != nil {
		o.errors.Inc()
	}
	o.duration.Observe(time.Since(start).Seconds())
}
