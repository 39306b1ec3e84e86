package pebble

// Invariant of this file: it.it is nil once the Pebble iterator is closed,
// whether by the iterator's user or by the store's Close, which closes
// iterators left open. mu serializes the user's calls with such a Close on
// another goroutine.

import (
	"fmt"
	"sync"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// iterator adapts a Pebble iterator to store.Iterator, hiding the row prefix.
type iterator struct {
	s *pebbleStore // nil for an iterator over an empty range

	mu      sync.Mutex
	it      *pebbledb.Iterator
	started bool
	valid   bool // positioned on a row
	value   []byte
	err     error
}

// Next moves to the first row on its first call and to the following row
// after that.
func (it *iterator) Next() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.valid, it.value = false, nil
	if it.it == nil || it.err != nil {
		return false
	}
	var ok bool
	if it.started {
		ok = it.it.Next()
	} else {
		it.started = true
		ok = it.it.First()
	}
	if !ok {
		return false
	}
	v, err := it.it.ValueAndErr()
	if err != nil {
		it.err = fmt.Errorf("pebble store %s: read value: %w", it.s.dir, err)
		return false
	}
	if v == nil {
		v = []byte{}
	}
	it.valid, it.value = true, v
	return true
}

// Key returns the current row's key without the row prefix.
func (it *iterator) Key() []byte {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.valid {
		return nil
	}
	return it.it.Key()[len(it.s.keys.prefix)+1:]
}

// Value returns the current row's value.
func (it *iterator) Value() []byte {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.value
}

// Err returns the error that stopped iteration, or ErrClosed when the store
// was closed under the iterator.
func (it *iterator) Err() error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.err != nil {
		return it.err
	}
	if it.it != nil {
		if err := it.it.Error(); err != nil {
			return fmt.Errorf("pebble store %s: iterate: %w", it.s.dir, err)
		}
	}
	return nil
}

// Close releases the Pebble iterator. Closing twice is harmless.
func (it *iterator) Close() error {
	it.mu.Lock()
	pit := it.it
	it.it = nil
	it.valid, it.value = false, nil
	it.mu.Unlock()
	if pit == nil {
		return nil
	}
	it.s.forget(it)
	if err := pit.Close(); err != nil {
		return fmt.Errorf("pebble store %s: close iterator: %w", it.s.dir, err)
	}
	return nil
}

// closeForStore closes the Pebble iterator on behalf of the store's Close and
// makes later calls report ErrClosed.
func (it *iterator) closeForStore() error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.it == nil {
		return nil
	}
	err := it.it.Close()
	it.it = nil
	it.valid, it.value = false, nil
	if it.err == nil {
		it.err = ErrClosed
	}
	if err != nil {
		return fmt.Errorf("close iterator: %w", err)
	}
	return nil
}
