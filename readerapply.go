package sluice

// How a table reader polls its partitions' records and applies them to
// their stores: the poll loop, each partition's applier, and the chunks
// they write. The invariants are those of reader.go.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// applyChunk bounds the records of one Apply: larger batches make Pebble sort
// them as a whole, which costs more than several smaller ones.
const applyChunk = 4096

// bulkLoadMin is how many records an empty store must be behind its end
// offset to be restored through its store.Loader. A smaller partition
// restores in tens of milliseconds through the memtable, which the stores
// of a processor share, while each loader holds buffers of its own: with a
// hundred partitions of 10,000 records each, loaders for all of them took
// 90 MiB more at the peak than the shared memtable (BenchmarkMemory).
const bulkLoadMin = 50_000

// run polls records until ctx is done or a store fails, and hands each
// partition's to its applier (applyLoop): one goroutine per partition,
// started with its first records, which applies them while the next
// fetches arrive and other partitions apply theirs. A partition's applier
// holds at most one fetch of records besides the one it applies; run waits
// for it to take the next before it polls again.
func (r *tableReader) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// A failed applier ends the poll it may be waiting in.
		select {
		case <-r.dead:
			cancel()
		case <-ctx.Done():
		}
	}()
	var (
		appliers sync.WaitGroup
		live     []*readerPartition // partitions with an applier
	)
	defer func() {
		for _, rp := range live {
			close(rp.work)
		}
		appliers.Wait()
	}()
	for {
		fetches := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return r.failure()
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			// Retriable errors are retried inside the client; what reaches
			// us is worth a log line, not a stop.
			r.logger.Warn("fetch error", "partition", p, "err", err)
			if fetchErr == nil && fatalKafkaError(err) {
				fetchErr = err
			}
		})
		if fetchErr != nil {
			return r.fail(fmt.Errorf("table %s: fetch: %w", r.topic, fetchErr))
		}
		type work struct {
			rp   *readerPartition
			p    int32
			recs []*kgo.Record
		}
		var todo []work
		r.mu.Lock()
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			rp, ok := r.parts[fp.Partition]
			if !ok || rp.removed {
				return
			}
			rp.hwm = max(rp.hwm, fp.HighWatermark)
			if len(fp.Records) == 0 {
				return
			}
			rp.queued++
			todo = append(todo, work{rp, fp.Partition, fp.Records})
		})
		// Partitions removed since the last poll get nothing more.
		live = slices.DeleteFunc(live, func(rp *readerPartition) bool {
			if rp.removed {
				close(rp.work)
			}
			return rp.removed
		})
		r.mu.Unlock()
		for i, w := range todo {
			if w.rp.work == nil {
				w.rp.work = make(chan []*kgo.Record, 1)
				live = append(live, w.rp)
				appliers.Go(func() { r.applyLoop(ctx, w.rp, w.p, w.rp.work) })
			}
			select {
			case w.rp.work <- w.recs:
			case <-ctx.Done():
				// What was not handed over is not applied.
				r.mu.Lock()
				for _, w := range todo[i:] {
					r.unqueue(w.rp)
				}
				r.mu.Unlock()
				return r.failure()
			}
		}
	}
}

// applyLoop applies the records handed to partition p until work is
// closed, and fails the reader at the first error. After a failure, once
// the reader stops (ctx) or once rp is removed, it drops what it is handed:
// reading resumes from the store's checkpoint.
func (r *tableReader) applyLoop(ctx context.Context, rp *readerPartition, p int32, work <-chan []*kgo.Record) {
	for recs := range work {
		r.mu.Lock()
		skip := rp.removed || r.err != nil || ctx.Err() != nil
		r.mu.Unlock()
		var err error
		if !skip {
			err = r.apply(rp, p, recs)
		}
		r.mu.Lock()
		r.unqueue(rp)
		r.mu.Unlock()
		if err != nil {
			_ = r.fail(err)
		}
	}
}

// unqueue counts one handed fetch of rp done, and signals idle when it was
// the last. The caller holds mu.
func (r *tableReader) unqueue(rp *readerPartition) {
	rp.queued--
	if rp.queued == 0 {
		r.idle.Broadcast()
	}
}

// failure is what run returns once its context is done: the error of a
// failed applier, or nil when the reader was stopped.
func (r *tableReader) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// apply writes records of partition p to its store in chunks, each with the
// offset after its last record as the checkpoint. Only p's applier calls
// it, without mu, with the fetch counted in rp.queued; it stops early
// once rp is removed.
func (r *tableReader) apply(rp *readerPartition, p int32, recs []*kgo.Record) error {
	// A loader sorts what it holds as a whole when it writes a chunk, so
	// it takes a fetch at once.
	size := applyChunk
	if rp.loader != nil {
		size = len(recs)
	}
	// While the partition bulk-loads, the slice is kept from one fetch to
	// the next: the restore otherwise allocates one the size of each
	// fetch, which the garbage collector has to scan for its pointers. It
	// is cleared after use, so that it keeps no fetched records alive.
	used := min(len(recs), size)
	changes := slices.Grow(rp.changes[:0], used)
	defer func() {
		rp.changes = nil
		if rp.loader != nil {
			clear(changes[:used])
			rp.changes = changes[:0]
		}
	}()
	for len(recs) > 0 {
		chunk := recs[:min(len(recs), size)]
		recs = recs[len(chunk):]
		changes = changes[:0]
		for _, rec := range chunk {
			if !rec.Attrs.IsControl() {
				changes = append(changes, store.Change{Key: rec.Key, Value: rec.Value})
			}
		}
		next := chunk[len(chunk)-1].Offset + 1
		loaded := rp.loader != nil
		if err := r.write(rp, changes, next); err != nil {
			return fmt.Errorf("table %s/%d: %w", r.topic, p, err)
		}
		r.mu.Lock()
		rp.offset = next
		restoredNow := false
		if !rp.isReady {
			rp.restored += int64(len(changes))
			if next >= rp.end {
				rp.isReady, restoredNow = true, true
			}
		}
		restored, removed := rp.restored, rp.removed
		r.mu.Unlock()
		if restoredNow {
			close(rp.ready)
			// A store that keeps restored rows in memory writes them out
			// now, so that a crash does not make the next start restore
			// them all again.
			// What a loader wrote is on disk already.
			if f, ok := rp.st.(store.Flusher); ok && restored > 0 && !loaded {
				if err := f.Flush(); err != nil {
					return fmt.Errorf("table %s/%d: flush after restore: %w", r.topic, p, err)
				}
			}
			took := time.Since(rp.started)
			r.logger.Info("restored", "partition", p, "records", restored,
				"took", took.Round(time.Millisecond), "records_per_second", int64(float64(restored)/max(took.Seconds(), 1e-3)))
		}
		if removed {
			return nil
		}
	}
	return nil
}

// write writes changes with the checkpoint next to rp's store, through
// its loader while it has one. The loader is closed once next reaches the
// end offset, so that the store holds every restored row before the
// partition is reported ready and takes Apply calls from then on. Only
// apply calls it, from the partition's applier.
func (r *tableReader) write(rp *readerPartition, changes []store.Change, next int64) error {
	if rp.loader == nil {
		if err := rp.st.Apply(changes, next); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		return nil
	}
	if err := rp.loader.Apply(changes, next); err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	if next < rp.end {
		return nil
	}
	l := rp.loader
	rp.loader = nil
	if err := l.Close(); err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	return nil
}
