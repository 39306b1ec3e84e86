package sluice

import (
	"context"
	"fmt"

	"github.com/sluice-io/sluice/store"
)

// RestoreProgress is how far a processor's partitions are in restoring their
// tables from the changelog, summed over the partitions.
type RestoreProgress struct {
	// Restored is how many changelog records the restores have read.
	Restored int64
	// Total is Restored plus the records the restores still have to read.
	Total int64
	// Restoring reports whether any partition is still restoring.
	Restoring bool
}

// Restore sums the restore progress of the partitions in s, for a progress
// bar or a readiness check.
func (s Stats) Restore() RestoreProgress {
	var r RestoreProgress
	for _, p := range s.Partitions {
		r.Restored += p.Restored
		r.Total += p.Restored + max(p.RestoreEnd-p.RestoreOffset, 0)
		if p.State == "restoring" {
			r.Restoring = true
		}
	}
	return r
}

// restoreTables opens the stores and waits until the table and the joined
// tables are restored.
func (t *task[V]) restoreTables(ctx context.Context) error {
	h := t.h
	var readies []func() error
	if h.table != "" {
		st, err := h.storage(h.table, t.partition)
		if err != nil {
			return fmt.Errorf("group %s: open store of partition %d: %w", h.group, t.partition, err)
		}
		t.st = st
		tableSide, windowsSide := st, store.Store(nil)
		if h.windows != "" {
			tableSide, windowsSide = splitStore(st)
		}
		readyOf, err := h.restore.add(ctx, map[int32]store.Store{t.partition: tableSide})
		ready := readyOf[t.partition]
		if err != nil {
			return fmt.Errorf("group %s: restore partition %d: %w", h.group, t.partition, err)
		}
		readies = append(readies, func() error { return h.restore.waitReady(ctx, ready) })
		if windowsSide != nil {
			// After the table, whose window rows, if any, are older
			// than the windows topic's (windowlog.go).
			readies = append(readies, func() error { return t.restoreWindows(ctx, ready, windowsSide) })
		}
	}
	for _, topic := range h.joinTopics {
		st, err := h.storage(h.group+"."+topic+".join", t.partition)
		if err != nil {
			return fmt.Errorf("group %s: open store of join %s/%d: %w", h.group, topic, t.partition, err)
		}
		t.joinStores[topic] = st
		r := h.joins[topic]
		readyOf, err := r.add(ctx, map[int32]store.Store{t.partition: st})
		ready := readyOf[t.partition]
		if err != nil {
			return fmt.Errorf("group %s: join %s: %w", h.group, topic, err)
		}
		readies = append(readies, func() error { return r.waitReady(ctx, ready) })
	}
	for _, wait := range readies {
		if err := wait(); err != nil {
			return fmt.Errorf("group %s: partition %d: %w", h.group, t.partition, err)
		}
	}
	if t.st != nil {
		// The task writes the table from now on.
		off, end, n, _ := h.restore.progress(t.partition)
		t.restoreOffset.Store(off)
		t.restoreEnd.Store(end)
		t.restored.Store(n)
		h.restore.remove(t.partition)
		if t.windows != "" {
			h.winRestore.remove(t.partition)
		}
		t.m.countRows(t.st)
		if err := t.initChangelogEnds(); err != nil {
			return fmt.Errorf("group %s: partition %d: %w", h.group, t.partition, err)
		}
	}
	return nil
}
