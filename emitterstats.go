package sluice

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EmitterStats are counts of what an emitter wrote.
type EmitterStats struct {
	// Topic is the topic the emitter writes.
	Topic string
	// Emitted is how many records Kafka acknowledged; Errors is how many
	// failed to be written.
	Emitted, Errors int64
}

// Stats returns what the emitter has written since it was created.
func (e *Emitter[V]) Stats() EmitterStats {
	return EmitterStats{Topic: e.topic, Emitted: e.outcomes.emitted.Load(), Errors: e.outcomes.errors.Load()}
}

// emitterCounts counts the outcome of every record an emitter's client
// produced; it is the client's hook.
type emitterCounts struct {
	emitted, errors       atomic.Int64
	emittedMet, errorsMet prometheus.Counter // nil without Metrics
}

func newEmitterCounts(topic string, c *clientConfig) (*emitterCounts, error) {
	m := &emitterCounts{}
	if c.metrics == nil {
		return m, nil
	}
	set, err := metricSetOf(c.metrics)
	if err != nil {
		return nil, err
	}
	m.emittedMet = set.emitted.WithLabelValues(topic)
	m.errorsMet = set.emitErrors.WithLabelValues(topic)
	return m, nil
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered.
func (m *emitterCounts) OnProduceRecordUnbuffered(_ *kgo.Record, err error) {
	if err != nil {
		m.errors.Add(1)
		if m.errorsMet != nil {
			m.errorsMet.Inc()
		}
		return
	}
	m.emitted.Add(1)
	if m.emittedMet != nil {
		m.emittedMet.Inc()
	}
}
