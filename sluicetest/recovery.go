package sluicetest

// Crashes, rebalances and seeded rows: a partition starts again on a new
// engine over stores rebuilt from the committed records of its changelog
// and joined tables, as a processor's task restores them.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/bridge"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// Crash simulates a processor that dies: what was not committed is lost.
// Exactly once, the open transaction is aborted (as the broker aborts a
// dead producer's); at least once, the records already written stay, as
// Kafka acknowledged them. Every partition then starts again as a new
// processor would: a new engine over a store restored from the changelog,
// reading from the committed positions, which the next Commit or Send
// processes again.
func (d *Driver) Crash() {
	if d.eos {
		for _, w := range d.open {
			w.entry().state = aborted
		}
		clear(d.open)
		d.open = d.open[:0]
	}
	for _, p := range d.parts {
		d.restore(p)
	}
}

// Rebalance moves partitions to another processor, all of them if none is
// named: as on a revoke, what was processed is committed first, then each
// partition starts again on a new engine over a store restored from the
// changelog. It returns the error of the commit, if any.
func (d *Driver) Rebalance(partitions ...int32) error {
	if err := d.Commit(); err != nil {
		return err
	}
	if len(partitions) == 0 {
		for p := range d.partitions {
			partitions = append(partitions, p)
		}
	}
	for _, n := range partitions {
		if n < 0 || n >= d.partitions {
			return fmt.Errorf("sluicetest: rebalance partition %d: there are %d partitions", n, d.partitions)
		}
		d.restore(d.parts[n])
	}
	return nil
}

// restore gives p a new engine over stores rebuilt from the committed
// records of its table's changelog (then of its windows topic, as a task
// restores them) and of its joined tables, reading its inputs from the
// committed positions.
func (d *Driver) restore(p *partition) {
	p.table = nil
	if table := d.g.Table(); table != "" {
		p.table = d.rebuild(table, p.n)
	}
	if windows := d.g.Windows(); windows != "" && p.table != nil {
		recs, end := d.topic(windows).read(p.n, 0, nil)
		changes := make([]store.Change, len(recs))
		for i, r := range recs {
			changes[i] = store.Change{Key: r.Key, Value: r.Value}
		}
		// A memory store fails only once closed, and this one is new.
		_ = bridge.RestoreWindows(p.table, changes, end)
	}
	p.joins = make(map[string]store.Store)
	for _, j := range d.g.Joins() {
		p.joins[j] = d.rebuild(j, p.n)
	}
	p.eng = d.g.NewEngine(p.n, p.table, p.joins, d.now)
	d.rewind(p)
}

// rebuild returns a new store holding partition n of topic's committed
// records, checkpointed at the partition's end.
func (d *Driver) rebuild(topic string, n int32) store.Store {
	st := memory.New()
	l := d.topic(topic)
	recs, end := l.read(n, 0, nil)
	changes := make([]store.Change, len(recs))
	for i, r := range recs {
		changes[i] = store.Change{Key: r.Key, Value: r.Value}
	}
	// A memory store fails only once closed, and this one is new.
	_ = st.Apply(changes, end)
	return st
}

// seed writes a record to a table topic as a producer outside the group,
// and brings the store of its partition up to date: for the group's own
// table, through a new engine, which holds no row of the old one. What is
// processed is committed first.
func (d *Driver) seed(topic string, key, value []byte) error {
	if err := d.Commit(); err != nil {
		return err
	}
	r := &kgo.Record{Topic: topic, Key: key, Value: value, Partition: -1}
	d.write(r, true)
	if st := d.g.Lookup(topic); st != nil {
		return st.Apply([]store.Change{{Key: key, Value: value}}, r.Offset+1)
	}
	p := d.parts[r.Partition]
	d.restore(p)
	return nil
}
