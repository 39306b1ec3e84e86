package sluice

// How a processor measures its consumer lag, and what it adds to Stats and
// to the metrics beyond its own counters.
//
// Invariants:
//   - The lag is measured by one goroutine every lagInterval, by kadm, the
//     way `sluice lag` measures it (kafka.GroupLag), and kept with the time
//     it was measured. Until the first measurement, and when
//     the last one is older than lagMaxAge, a partition has no lag: Stats
//     says -1 and the metrics have no series, never a made-up 0.

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice/internal/kafka"
)

const (
	// lagInterval is how often a processor measures its lag.
	lagInterval = 2 * time.Second
	// lagMaxAge is how old a measurement may be and still count.
	lagMaxAge = 30 * time.Second
)

// InputStatus is where a group is in one partition of one of its inputs.
type InputStatus struct {
	Topic string
	// Committed is the group's committed offset: the next record to
	// process. It is -1 while the group has committed nothing.
	Committed int64
	// HighWatermark is the offset after the partition's last record.
	HighWatermark int64
	// Lag is HighWatermark minus Committed: how many records are not
	// processed and committed yet. Before the first commit it counts from
	// the partition's first record, as `sluice lag` does, or is 0 with
	// StartAt(Latest), where the group starts at the end.
	Lag int64
}

// measureLag measures the lag every lagInterval until ctx is done.
func (p *Processor[V]) measureLag(ctx context.Context) error {
	adm := kadm.NewClient(p.cl)
	tick := time.NewTicker(lagInterval)
	defer tick.Stop()
	for {
		if err := p.measureLagOnce(ctx, adm); err != nil && ctx.Err() == nil {
			p.logger.Debug("lag not measured", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (p *Processor[V]) measureLagOnce(ctx context.Context, adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 5*lagInterval)
	defer cancel()
	gl, err := kafka.GroupLag(ctx, adm, p.g.name)
	if err != nil {
		return err
	}
	measured := time.Now()
	lag := make(map[int32][]InputStatus)
	for _, topic := range p.g.inputTopics() {
		for part, ml := range gl.Lag[topic] {
			if ml.Err != nil || ml.Lag < 0 {
				continue
			}
			in := InputStatus{Topic: topic, Committed: ml.Commit.At, HighWatermark: ml.End.Offset, Lag: ml.Lag}
			if in.Committed < 0 {
				in.Committed = -1
				if p.cfg.startAt == Latest {
					in.Lag = 0 // nothing is behind yet
				}
			}
			lag[part] = append(lag[part], in)
		}
	}
	for _, ins := range lag {
		slices.SortFunc(ins, func(a, b InputStatus) int { return cmp.Compare(a.Topic, b.Topic) })
	}
	p.metrics.mu.Lock()
	p.metrics.lag, p.metrics.lagMeasured = lag, measured
	p.metrics.mu.Unlock()
	return nil
}

// addStats adds the processor-wide figures to s.
func (p *Processor[V]) addStats(s *Stats) {
	m := p.metrics
	s.Group = p.g.name
	s.Consumed, s.Produced = m.consumed.Load(), m.produced.Load()
	s.Failed = m.failed.Load()
	s.Late = m.late.Load()
	s.WindowResults, s.WindowUpdates = m.windowFinals.Load(), m.windowUpdates.Load()
	s.WindowsPurged = m.windowsPurged.Load()
	m.mu.Lock()
	s.LastError = copyEvent(m.lastError)
	m.mu.Unlock()
}

// addPartitionStats adds what task t and the lag measurement know to st.
func (p *Processor[V]) addPartitionStats(t *task[V], st *PartitionStatus) {
	m := p.metrics
	st.Consumed = t.m.consumed.Load()
	st.TableRows = t.m.tableRows()
	st.OpenWindows = t.m.openWindows.Load()
	st.Lag = -1
	m.mu.Lock()
	defer m.mu.Unlock()
	st.LastError = copyEvent(m.partitionErrors[t.partition])
	if time.Since(m.lagMeasured) > lagMaxAge {
		return
	}
	if ins, ok := m.lag[t.partition]; ok {
		st.Inputs = slices.Clone(ins)
		st.LagMeasured = m.lagMeasured
		st.Lag = 0
		for _, in := range ins {
			st.Lag += in.Lag
		}
	}
}

// attachMetrics makes the processor's state part of the metrics until the
// returned function is called.
func (p *Processor[V]) attachMetrics() (detach func()) {
	if p.metrics.set == nil {
		return func() {}
	}
	return p.metrics.set.state.attach(p.reportState)
}

// reportState reports the series the metrics read from Stats.
func (p *Processor[V]) reportState(add func(d *stateDesc, v float64, labels ...string)) {
	s := p.Stats()
	g := s.Group
	add(descRebalances, float64(s.Rebalances), g)
	p.strategy.addState(add, s)
	add(descFailed, float64(s.Failed), g, "failed")
	add(descFailed, float64(s.Skipped), g, "skipped")
	add(descFailed, float64(s.DeadLettered), g, "dead_lettered")
	windows := len(p.g.windows) > 0
	if windows {
		add(descWindowResults, float64(s.WindowResults), g, "final")
		add(descWindowResults, float64(s.WindowUpdates), g, "update")
		add(descLateRecords, float64(s.Late), g)
		add(descPurgedWindows, float64(s.WindowsPurged), g)
	}
	var restoring, running int
	for _, st := range s.Partitions {
		part := strconv.Itoa(int(st.Partition))
		if st.State == "running" {
			running++
		} else {
			restoring++
		}
		if p.g.Persisted() {
			add(descRestored, float64(st.Restored), g, part)
			add(descRestoreRemaining, float64(max(st.RestoreEnd-st.RestoreOffset, 0)), g, part)
			if st.TableRows >= 0 {
				add(descTableRows, float64(st.TableRows), g, part)
			}
		}
		if windows && st.State == "running" {
			add(descOpenWindows, float64(st.OpenWindows), g, part)
		}
		for _, in := range st.Inputs {
			add(descLag, float64(in.Lag), g, in.Topic, part)
		}
	}
	add(descPartitions, float64(restoring), g, "restoring")
	add(descPartitions, float64(running), g, "running")
	if p.standbys != nil {
		var restoring, following int
		for _, st := range s.Standbys {
			if st.State == "following" {
				following++
			} else {
				restoring++
			}
			add(descStandbyBehind, float64(st.Behind), g, strconv.Itoa(int(st.Partition)))
		}
		add(descStandbys, float64(restoring), g, "restoring")
		add(descStandbys, float64(following), g, "following")
	}
}
