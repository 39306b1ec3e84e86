package pebble

// Range deletions: the store's implementation of store.RangeDeleter.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/sluice-io/sluice/store"
)

// ApplyRanges deletes ranges and writes changes and the checkpoint in one
// batch; it implements store.RangeDeleter. A store that counts its rows
// reads the rows of the ranges to count them, and deletes them one by one.
func (s *pebbleStore) ApplyRanges(changes []store.Change, ranges []store.Range, offset int64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.loading.Load() != nil {
		return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, errLoading)
	}
	b := s.db.NewBatch()
	defer b.Close()
	var (
		delta int64
		seen  map[string]bool // whether a key holds a row after the changes so far
		k     []byte
	)
	if s.counting {
		seen = make(map[string]bool, len(changes))
		if len(ranges) > 0 {
			dels, err := s.rowsIn(ranges)
			if err != nil {
				return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, err)
			}
			changes = append(dels, changes...)
		}
	} else {
		for _, r := range ranges {
			if err := b.DeleteRange(s.keys.row(nil, r.Lo), s.keys.row(nil, r.Hi), nil); err != nil {
				return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, err)
			}
		}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	order := s.inKeyOrder(changes)
	for i := range changes {
		c := changes[i]
		if order != nil {
			c = changes[order[i].index]
		}
		if s.counting {
			existed, ok := seen[string(c.Key)]
			if !ok {
				var err error
				k = s.keys.row(k[:0], c.Key)
				if existed, err = s.hasRow(k); err != nil {
					return fmt.Errorf("pebble store %s: apply at offset %d: count rows: %w", s.dir, offset, err)
				}
			}
			exists := c.Value != nil
			switch {
			case exists && !existed:
				delta++
			case !exists && existed:
				delta--
			}
			seen[string(c.Key)] = exists
		}
		// Deferred operations let the prefixed key be written straight into
		// the batch instead of being assembled in a buffer first.
		var op *pebbledb.DeferredBatchOp
		n := len(s.keys.prefix) + 1 + len(c.Key)
		if c.Value == nil {
			op = b.DeleteDeferred(n)
		} else {
			op = b.SetDeferred(n, len(c.Value))
			copy(op.Value, c.Value)
		}
		s.keys.row(op.Key[:0], c.Key)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, err)
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(offset))
	if err := b.Set(s.keys.offset, v[:], nil); err != nil {
		return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, err)
	}
	var err error
	switch {
	case s.counting:
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(s.rows.Load()+delta))
		err = b.Set(s.keys.rows, n[:], nil)
	case s.staleCount.Load():
		err = b.Delete(s.keys.rows, nil)
	}
	if err != nil {
		return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, err)
	}
	if err := b.Commit(pebbledb.NoSync); err != nil {
		return fmt.Errorf("pebble store %s: apply at offset %d: %w", s.dir, offset, err)
	}
	s.rows.Add(delta)
	s.staleCount.Store(false)
	return nil
}

// inKeyOrder returns the order of changes by key, the changes of one key in
// the order given (sortByKey), in the store's buffers, or nil if changes
// are in that order already. Pebble inserts a batch into its memtable
// entry by entry, starting each search of the skiplist from where the
// entry before went, so a batch in key order is inserted in about half the
// time of one in the order a task changed its rows
// (BenchmarkRewriteTenStores), for much less than that in the sort. The
// caller holds applyMu.
func (s *pebbleStore) inKeyOrder(changes []store.Change) []sortKey {
	if slices.IsSortedFunc(changes, func(a, b store.Change) int { return bytes.Compare(a.Key, b.Key) }) {
		return nil
	}
	s.order, s.scratch = sortByKey(len(changes), func(i uint32) []byte { return changes[i].Key }, s.order, s.scratch)
	return s.order
}

// rowsIn returns the deletes of the rows in ranges.
func (s *pebbleStore) rowsIn(ranges []store.Range) ([]store.Change, error) {
	var dels []store.Change
	for _, r := range ranges {
		it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: s.keys.row(nil, r.Lo), UpperBound: s.keys.row(nil, r.Hi)})
		if err != nil {
			return nil, fmt.Errorf("read range: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			dels = append(dels, store.Change{Key: append([]byte(nil), it.Key()[len(s.keys.prefix)+1:]...)})
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, fmt.Errorf("read range: %w", err)
		}
	}
	return dels, nil
}
