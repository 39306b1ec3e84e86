package sluice

// The collector of the series read from running objects when the registry
// is gathered; see the invariants at the top of metrics.go.

import (
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports, when gathered, the series read from running
// objects, and keeps the counters of stopped ones.
type stateCollector struct {
	mu      sync.Mutex
	sources map[int]stateSource
	next    int
	retired map[seriesKey]float64 // counters of stopped sources
}

// stateSource reports series through add.
type stateSource func(add func(d *stateDesc, v float64, labels ...string))

type stateDesc struct {
	desc      *prometheus.Desc
	valueType prometheus.ValueType
}

type seriesKey struct {
	d      *stateDesc
	labels string
}

var (
	descLag = &stateDesc{prometheus.NewDesc("sluice_consumer_lag_records",
		"Records of an input partition not yet committed by the group: high watermark minus committed offset, measured every few seconds.",
		[]string{"group", "topic", "partition"}, nil), prometheus.GaugeValue}
	descPartitions = &stateDesc{prometheus.NewDesc("sluice_partitions",
		"Partitions a group's processors own, by state: restoring or running.", []string{"group", "state"}, nil), prometheus.GaugeValue}
	descTableRows = &stateDesc{prometheus.NewDesc("sluice_table_rows",
		"Rows of a group's table partition, as its store counts them.", []string{"group", "partition"}, nil), prometheus.GaugeValue}
	descRestored = &stateDesc{prometheus.NewDesc("sluice_restored_records",
		"Changelog records read by the last restore of a table partition.", []string{"group", "partition"}, nil), prometheus.GaugeValue}
	descRestoreRemaining = &stateDesc{prometheus.NewDesc("sluice_restore_remaining_records",
		"Changelog records a table partition still has to restore.", []string{"group", "partition"}, nil), prometheus.GaugeValue}
	descRebalances = &stateDesc{prometheus.NewDesc("sluice_rebalances_total",
		"Assignments a group's processors received.", []string{"group"}, nil), prometheus.CounterValue}
	descTransactions = &stateDesc{prometheus.NewDesc("sluice_transactions_total",
		"Transactions a group ended, exactly once, by outcome: committed or aborted.", []string{"group", "outcome"}, nil), prometheus.CounterValue}
	descFailed = &stateDesc{prometheus.NewDesc("sluice_records_failed_total",
		"Records whose processing failed, by what the error policy did: failed (stopped), skipped, dead_lettered.", []string{"group", "outcome"}, nil), prometheus.CounterValue}
	descBehind = &stateDesc{prometheus.NewDesc("sluice_records_behind_high_watermark",
		"Records of a batch group's input partition past the last one fetched, up to the high watermark of that fetch (messages behind high water mark).",
		[]string{"group", "partition"}, nil), prometheus.GaugeValue}
	descViewRows = &stateDesc{prometheus.NewDesc("sluice_view_rows",
		"Rows of a view, as its stores count them.", []string{"view"}, nil), prometheus.GaugeValue}
	descViewState = &stateDesc{prometheus.NewDesc("sluice_view_state",
		"1 for a view's current state (idle, waiting, restoring, running, closed), 0 for the others.", []string{"view", "state"}, nil), prometheus.GaugeValue}
	descOpenWindows = &stateDesc{prometheus.NewDesc("sluice_windows_open",
		"Open windows of a group's windowed aggregations in a partition, as of its last batch.", []string{"group", "partition"}, nil), prometheus.GaugeValue}
	descWindowResults = &stateDesc{prometheus.NewDesc("sluice_window_results_total",
		"Results of a group's windowed aggregations handed to their handlers, by kind: final or update.", []string{"group", "kind"}, nil), prometheus.CounterValue}
	descLateRecords = &stateDesc{prometheus.NewDesc("sluice_window_late_records_total",
		"Records that came when every window they belong to had closed.", []string{"group"}, nil), prometheus.CounterValue}
	descPurgedWindows = &stateDesc{prometheus.NewDesc("sluice_windows_purged_total",
		"Closed windows deleted from a group's table once their retention ended.", []string{"group"}, nil), prometheus.CounterValue}
	descStandbys = &stateDesc{prometheus.NewDesc("sluice_standby_partitions",
		"Warm copies a group's processors keep of partitions they do not own (Standbys), by state: restoring or following.", []string{"group", "state"}, nil), prometheus.GaugeValue}
	descStandbyBehind = &stateDesc{prometheus.NewDesc("sluice_standby_behind_records",
		"Changelog records a warm copy of a table partition has yet to read, up to the high watermark of its last fetch.", []string{"group", "partition"}, nil), prometheus.GaugeValue}
	stateDescs = []*stateDesc{descLag, descPartitions, descTableRows, descRestored, descRestoreRemaining,
		descRebalances, descTransactions, descFailed, descBehind, descViewRows, descViewState,
		descOpenWindows, descWindowResults, descLateRecords, descPurgedWindows, descStandbys, descStandbyBehind}
)

func newStateCollector() *stateCollector {
	return &stateCollector{sources: make(map[int]stateSource), retired: make(map[seriesKey]float64)}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range stateDescs {
		ch <- d.desc
	}
}

// Collect implements prometheus.Collector. Series two sources report alike
// (two processors of one group) are summed.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	values := make(map[seriesKey]float64, len(c.retired))
	for k, v := range c.retired {
		values[k] = v
	}
	sources := make([]stateSource, 0, len(c.sources))
	for _, s := range c.sources {
		sources = append(sources, s)
	}
	c.mu.Unlock()
	for _, s := range sources {
		s(func(d *stateDesc, v float64, labels ...string) {
			values[seriesKey{d, strings.Join(labels, "\x00")}] += v
		})
	}
	keys := make([]seriesKey, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].labels < keys[j].labels })
	for _, k := range keys {
		// Every series has at least one label.
		m, err := prometheus.NewConstMetric(k.d.desc, k.d.valueType, values[k], strings.Split(k.labels, "\x00")...)
		if err != nil {
			m = prometheus.NewInvalidMetric(k.d.desc, err)
		}
		ch <- m
	}
}

// attach adds a source and returns the function that removes it, keeping
// the counters it reported last.
func (c *stateCollector) attach(s stateSource) (detach func()) {
	c.mu.Lock()
	id := c.next
	c.next++
	c.sources[id] = s
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			delete(c.sources, id)
			s(func(d *stateDesc, v float64, labels ...string) {
				if d.valueType == prometheus.CounterValue {
					c.retired[seriesKey{d, strings.Join(labels, "\x00")}] += v
				}
			})
		})
	}
}
