package memory

// Invariants of this file:
//   - rows and offset change only under mu held for writing, so a reader that
//     holds mu for reading sees the effect of every Apply as a whole or not at
//     all. This is what makes Apply atomic.
//   - A value slice stored in rows is never modified after it is stored: Apply
//     replaces slices instead of writing into them. Readers may therefore
//     copy a value after releasing mu.

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/sluice-io/sluice/store"
)

// ErrClosed is returned by every method of a store after Close.
var ErrClosed = errors.New("memory: store closed")

// New returns an empty in-memory store for one partition, with offset -1.
func New() store.Store {
	return &memStore{rows: map[string][]byte{}, offset: -1}
}

// Builder returns a store.Builder that hands out a new, empty store on every
// call, so no two tables or partitions ever share rows.
func Builder() store.Builder {
	return func(string, int32) (store.Store, error) { return New(), nil }
}

type memStore struct {
	mu     sync.RWMutex
	rows   map[string][]byte
	offset int64
	closed bool
}

// Get returns a copy of the value stored under key, or store.ErrNotFound.
func (s *memStore) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	v, ok := s.rows[string(key)]
	s.mu.RUnlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	// bytes.Clone keeps an empty value non-nil, so it never reads as a
	// tombstone.
	return bytes.Clone(v), nil
}

// Apply copies the changes and writes them with the checkpoint under one
// write lock, so readers see all of them or none.
func (s *memStore) Apply(changes []store.Change, offset int64) error {
	// Copy outside the lock to keep the time readers wait short.
	values := make([][]byte, len(changes))
	for i, c := range changes {
		if c.Value != nil {
			values[i] = bytes.Clone(c.Value)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for i, c := range changes {
		if values[i] == nil {
			delete(s.rows, string(c.Key))
		} else {
			s.rows[string(c.Key)] = values[i]
		}
	}
	s.offset = offset
	return nil
}

// Rows returns the number of rows; it implements store.RowCounter.
func (s *memStore) Rows() (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, false
	}
	return int64(len(s.rows)), true
}

// Offset returns the checkpoint of the last Apply, or -1.
func (s *memStore) Offset() (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.offset, nil
}

// Iter takes a sorted snapshot of the rows in [lo, hi).
func (s *memStore) Iter(lo, hi []byte) (store.Iterator, error) {
	type row struct {
		key   string
		value []byte
	}
	var rows []row
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	if lo == nil || hi == nil || bytes.Compare(lo, hi) < 0 {
		for k, v := range s.rows {
			if (lo == nil || k >= string(lo)) && (hi == nil || k < string(hi)) {
				rows = append(rows, row{k, v})
			}
		}
	}
	s.mu.RUnlock()

	// Go compares strings bytewise, which is the order Iter promises.
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.key, b.key) })

	// One buffer holds every key and value of the snapshot, so a scan of n
	// rows costs three allocations, not 2n.
	size := 0
	for _, r := range rows {
		size += len(r.key) + len(r.value)
	}
	buf := make([]byte, 0, size)
	entries := make([]entry, len(rows))
	for i, r := range rows {
		start := len(buf)
		buf = append(buf, r.key...)
		mid := len(buf)
		buf = append(buf, r.value...)
		entries[i] = entry{key: buf[start:mid:mid], value: buf[mid:len(buf):len(buf)]}
	}
	return &iterator{entries: entries, pos: -1}, nil
}

// Clear drops every row and resets the offset to -1.
func (s *memStore) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.rows = map[string][]byte{}
	s.offset = -1
	return nil
}

// Close drops the rows; every later call returns ErrClosed. Iterators taken
// before Close keep their snapshot.
func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.rows = nil
	return nil
}
