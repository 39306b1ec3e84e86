package sluice

// What an engine hands its driver to write (effects, then the batch's
// changelog records) and what it does once they are written (applied) or
// their transaction aborted (discarded).

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// effects hands out the records the processed records asked to write
// (outputs, loopbacks, dead letters), in order, and forgets them. The slice
// is the engine's, reused when it is small (keptEffects): it is valid until
// the next call to process.
func (e *engine[V]) effects() []*kgo.Record {
	out := e.out
	if cap(out) > keptEffects {
		e.out, e.handedOut = nil, len(out)
	} else {
		e.out = out[:0]
	}
	return out[:len(out):len(out)]
}

// keptEffects is how many records' room the engine keeps for the effects
// of its next call. A call that made more hands its slice out for good, so
// that a partition keeps nothing the size of its largest delivery (up to
// MaxBatch records) once it is written: kept by every task, that grew with
// the partitions a processor owns.
const keptEffects = 1024

// endBatch ends the batch in hand: it returns the changelog records of the
// rows the batch changed, one per key with its latest value (none for a
// row it made and deleted), and keeps the changes pending until applied or
// discarded. Call effects first: the
// changelog records must be written after the effects that led to them, in
// the same transaction exactly once.
func (e *engine[V]) endBatch() []*kgo.Record {
	e.writeStreamTime()
	if e.win != nil {
		e.m.openWindows.Store(e.win.open)
	}
	if len(e.dirty) == 0 {
		return nil
	}
	// The batch's records and keys come from two slabs, which hold those
	// of every batch until the store is updated, and which a driver that
	// lets go of them reuses then.
	n := 0
	for _, key := range e.dirty {
		n += len(key)
	}
	if cap(e.clKeys)-len(e.clKeys) < n {
		// The records written before keep the old slab alive.
		e.clKeys = takeKeySlab(max(n, 2*cap(e.clKeys)), e.reuseChangelog)
	}
	if cap(e.clRecs)-len(e.clRecs) < len(e.dirty) {
		e.clRecs, e.clOut = takeRecordSlab(max(len(e.dirty), 2*cap(e.clRecs)), e.reuseChangelog)
	}
	recs := e.clOut[:0]
	if !e.reuseChangelog {
		recs = make([]*kgo.Record, 0, len(e.dirty))
	}
	for i, key := range e.dirty {
		if e.unwritten(key, e.dirtyRows[i]) {
			continue
		}
		r := e.dirtyRows[i]
		wasPending := r.pending
		raw := e.markWritten(key, r)
		if r.purged && e.winTopic != "" && e.ranges != nil {
			continue // its aggregation's purge mark covers it, and its range deletes it
		}
		e.clKeys = append(e.clKeys, key...)
		k := e.clKeys[len(e.clKeys)-len(key) : len(e.clKeys) : len(e.clKeys)]
		if wasPending && e.winTopic == "" && r.pendingAt < len(e.pending) && string(e.pending[r.pendingAt].Key) == key {
			// Changed again before the store got the earlier change (the
			// writes of a transaction, or of applyDelay at least once):
			// the store gets the latest only, in one memtable insert.
			e.pending[r.pendingAt].Value = raw
		} else {
			r.pendingAt = len(e.pending)
			e.pending = append(e.pending, store.Change{Key: k, Value: raw})
		}
		topic := e.table
		if e.winTopic != "" && windowLogKey(key) {
			if r.purged {
				continue // its aggregation's purge mark covers it
			}
			e.purgeRange(key, raw)
			topic = e.winTopic
		}
		e.clRecs = append(e.clRecs, kgo.Record{Topic: topic, Partition: e.partition, Key: k, Value: raw})
		recs = append(recs, &e.clRecs[len(e.clRecs)-1])
	}
	if e.reuseChangelog {
		e.clOut = recs
	}
	clear(e.dirty)
	e.dirty = e.dirty[:0]
	clear(e.dirtyRows)
	e.dirtyRows = e.dirtyRows[:0]
	e.windowsWritten()
	return recs
}

// applied writes the pending row changes to the store, with the changelog
// offset they reach (the offset after the last acknowledged changelog
// record), in one atomic step. The driver calls it once everything endBatch
// returned is acknowledged, and, exactly once, committed.
func (e *engine[V]) applied(changelogEnd int64) error {
	return e.appliedAt(changelogEnd, -1)
}

// appliedAt is applied for a group with a windows topic: windowsEnd is
// the offset after its last acknowledged record, which the store records
// beside changelogEnd in the same Apply (-1: none to record).
func (e *engine[V]) appliedAt(changelogEnd, windowsEnd int64) error {
	if len(e.pending) > 0 {
		if windowsEnd >= 0 {
			e.pending = append(e.pending, windowsCheckpoint(windowsEnd))
		}
		var err error
		if len(e.pendingRanges) > 0 {
			err = e.ranges.ApplyRanges(e.pending, e.pendingRanges, changelogEnd)
			clear(e.pendingRanges)
			e.pendingRanges = e.pendingRanges[:0]
		} else {
			err = e.st.Apply(e.pending, changelogEnd)
		}
		if err != nil {
			return fmt.Errorf("group %s: partition %d: store: %w", e.cfg.group.name, e.partition, err)
		}
		e.m.applied()
	}
	e.timersApplied(e.pending)
	clear(e.pending)
	e.pending = e.pending[:0]
	e.releaseChangelog(e.reuseChangelog)
	e.rowsApplied()
	e.windowsApplied()
	return nil
}

// canDeferApply reports whether the rows written may wait to be applied
// with the next batches' (applydefer.go): not for a group whose engine reads
// its own store beyond the rows it holds, timers, windows and concurrent
// inputs.
func (e *engine[V]) canDeferApply() bool {
	return e.tm == nil && e.win == nil && e.winTopic == "" && e.cc == nil && len(e.pendingRanges) == 0
}

// changelogSlabKeep is the most changelog records whose slab an engine
// keeps for the next batches, and changelogKeysKeep the most bytes of keys.
const (
	changelogSlabKeep = 256
	changelogKeysKeep = 64 << 10
)

// releaseChangelog lets go of the changelog records and keys of the
// batches applied or discarded: it keeps their slabs for the next batches
// if reuse, and drops them otherwise.
func (e *engine[V]) releaseChangelog(reuse bool) {
	if !reuse {
		e.clKeys, e.clRecs, e.clOut = nil, nil, nil
		return
	}
	e.changelogAcked()
	// A slab grown by a large batch (or transaction) is not kept: the
	// steady state's batches are what a round trip brings. It goes back
	// to the slabs the tasks share.
	if cap(e.clKeys) > changelogKeysKeep {
		giveKeySlab(e.clKeys)
		e.clKeys = nil
	} else {
		e.clKeys = e.clKeys[:0]
	}
}

// changelogAcked lets go of the changelog records of the batches written,
// all acknowledged: a driver that reuses them (reuseChangelog) calls it once
// the client dropped them, so that the next batches' records are written
// over them while their rows wait to be applied. The keys stay: the
// pending changes hold them until applied.
func (e *engine[V]) changelogAcked() {
	if !e.reuseChangelog {
		return
	}
	// Cleared, so that the slab keeps no row value alive.
	clear(e.clRecs)
	clear(e.clOut)
	if cap(e.clRecs) > changelogSlabKeep {
		giveRecordSlab(e.clRecs, e.clOut)
		e.clRecs, e.clOut = nil, nil
		return
	}
	e.clRecs, e.clOut = e.clRecs[:0], e.clOut[:0]
}

// The changelog slabs larger than an engine keeps, shared by the engines
// of every task: a task writing large batches (reading a backlog, closing
// windows) takes one for each batch and gives it back once the batch is
// acknowledged, instead of making one the size of the batch each time,
// and what the tasks no longer use goes with the garbage collector's
// next cycles (sync.Pool), so that no task holds one between large
// batches. Only a driver that reuses its changelog records (a Kafka task)
// gives slabs back: only it knows the client let go of them.
var (
	recordSlabs sync.Pool // of *recordSlab
	keySlabs    sync.Pool // of *[]byte
)

type recordSlab struct {
	recs []kgo.Record
	out  []*kgo.Record
}

// takeRecordSlab returns an empty slab of room for at least n changelog
// records, and its slice of pointers of the same room: one of the shared
// ones if pooled and one is large enough.
func takeRecordSlab(n int, pooled bool) ([]kgo.Record, []*kgo.Record) {
	if pooled && n > changelogSlabKeep {
		if s, _ := recordSlabs.Get().(*recordSlab); s != nil && cap(s.recs) >= n {
			return s.recs[:0], s.out[:0]
		}
	}
	return make([]kgo.Record, 0, n), make([]*kgo.Record, 0, n)
}

// giveRecordSlab hands a cleared slab back to the shared ones.
func giveRecordSlab(recs []kgo.Record, out []*kgo.Record) {
	recordSlabs.Put(&recordSlab{recs: recs[:0], out: out[:0]})
}

// takeKeySlab is takeRecordSlab for the bytes of the changelog keys.
func takeKeySlab(n int, pooled bool) []byte {
	if pooled && n > changelogKeysKeep {
		if b, _ := keySlabs.Get().(*[]byte); b != nil && cap(*b) >= n {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, n)
}

func giveKeySlab(b []byte) {
	b = b[:0]
	keySlabs.Put(&b)
}

// discarded forgets what the engine did since the store was last updated:
// the pending and dirty rows and the effects not handed out. The driver
// calls it when the transaction they were written in aborted; the engine's
// rows are the store's again.
func (e *engine[V]) discarded() {
	e.pending = nil
	e.pendingRanges = nil
	e.releaseChangelog(false)
	e.rowsDiscarded()
	e.timersDiscarded()
	e.windowsDiscarded()
	clear(e.out)
	e.out = e.out[:0]
}
