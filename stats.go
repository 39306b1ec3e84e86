package sluice

import (
	"maps"
	"slices"
	"time"
)

// Stats are counts of what a processor did.
type Stats struct {
	// Group is the processor's group.
	Group string
	// Consumed is how many input records the processor's tasks processed;
	// Produced is how many records it wrote and Kafka acknowledged:
	// changelog records, outputs, loopbacks and dead letters.
	Consumed, Produced int64
	// Failed is how many records the Fail policy stopped at.
	Failed int64
	// LastError is the last error the processor met: a failed, skipped or
	// dead-lettered record, or a failed commit. Nil if none.
	LastError *ErrorEvent
	// Skipped is how many failed records the Skip policy went past.
	Skipped int64
	// DeadLettered is how many failed records went to the dead-letter
	// topic.
	DeadLettered int64
	// Misplaced is how many input records were not on the partition the
	// processor's Hasher places their key on (see MisplacedError).
	Misplaced int64
	// Late is how many records came when every window they belong to
	// had closed (see LateError); they are among the failed, skipped or
	// dead-lettered records, as the error policy decided.
	Late int64
	// WindowResults is how many final results of windowed aggregations
	// were handed to their handlers, WindowUpdates how many updates
	// (EmitUpdates), and WindowsPurged is how many closed windows were deleted from the
	// table. Exactly once, results and purges of aborted transactions are
	// counted too, and done again.
	WindowResults, WindowUpdates, WindowsPurged int64
	// Commits and Aborts count transactions, exactly once.
	Commits, Aborts int64
	// Redone is how many input records, exactly once, were handed to
	// tasks in transactions that then aborted: their effects are dropped
	// and the records are processed again, here or by the partition's
	// next owner. A rebalance aborts no work (the transaction commits
	// before the group's callbacks run); a failed record, a broker that
	// cannot be reached or a member dropped from the group does.
	Redone int64
	// Rebalances counts the assignments this processor received.
	Rebalances int64
	// Partitions is the state of each partition the processor owns, in
	// partition order.
	Partitions []PartitionStatus
	// Standbys are the warm copies the processor keeps of partitions it
	// does not own (see Standbys), in partition order.
	Standbys []StandbyStatus
}

// PartitionStatus is the state of one partition a processor owns.
type PartitionStatus struct {
	Partition int32
	// State is "restoring" until the partition's tables are restored, then
	// "running".
	State string
	// RestoreOffset and RestoreEnd say how far restoring the group's table
	// is: the next changelog offset to read and the offset it restores to.
	// Both are 0 for a group without a table.
	RestoreOffset, RestoreEnd int64
	// Restored is how many changelog records were read to restore the
	// table: 0 when the local store was up to date.
	Restored int64
	// Consumed is how many input records the partition's task processed
	// since the partition was assigned to this processor.
	Consumed int64
	// Redone is how many of the records handed to the partition's task
	// since it was assigned were in transactions that aborted, exactly
	// once (see Stats.Redone).
	Redone int64
	// Inputs is the group's position in the partition of each input, in
	// topic order, as last measured (every few seconds); Lag is their sum
	// and LagMeasured when it was measured. Until the first measurement
	// Inputs is empty and Lag is -1.
	Inputs      []InputStatus
	Lag         int64
	LagMeasured time.Time
	// OpenWindows is how many windows of the group's windowed
	// aggregations are open in the partition (not closed yet), as of the
	// last batch.
	OpenWindows int64
	// TableRows is the number of rows of the partition's table, as its
	// store counts them while it changes them (see store.RowCounter): the
	// memory store does, and Pebble with pebble.CountRows, which the
	// default storage uses when the processor exports Metrics. It is -1
	// while the partition restores and when the store does not count; rows
	// are never read to count them.
	TableRows int64
	// LastError is the last error met in the partition: a failed, skipped
	// or dead-lettered record, or a failed commit. Nil if none.
	LastError *ErrorEvent
}

// Stats returns what the processor has done since it was created.
func (p *Processor[V]) Stats() Stats {
	s := Stats{
		Skipped:      p.skipped.Load(),
		DeadLettered: p.deadLettered.Load(),
		Misplaced:    p.placement.misplaced.Load(),
		Commits:      p.commits.Load(),
		Aborts:       p.aborts.Load(),
		Redone:       p.redone.Load(),
		Rebalances:   p.rebalances.Load(),
	}
	p.mu.Lock()
	tasks := slices.Collect(maps.Values(p.tasks))
	p.mu.Unlock()
	for _, t := range tasks {
		st := PartitionStatus{Partition: t.partition, State: "restoring"}
		if t.active.Load() {
			st.State = "running"
		}
		st.RestoreOffset, st.RestoreEnd, st.Restored = t.restoreOffset.Load(), t.restoreEnd.Load(), t.restored.Load()
		st.Redone = t.redone.Load()
		if p.restore != nil {
			if off, end, n, ok := p.restore.progress(t.partition); ok {
				st.RestoreOffset, st.RestoreEnd, st.Restored = off, end, n
			}
		}
		p.addPartitionStats(t, &st)
		s.Partitions = append(s.Partitions, st)
	}
	slices.SortFunc(s.Partitions, func(a, b PartitionStatus) int { return int(a.Partition - b.Partition) })
	s.Standbys = p.standbys.stats()
	p.addStats(&s)
	return s
}
