package memory

// Invariant of this file: an iterator owns its entries outright (they were
// copied by Iter), so it needs no lock and outlives the store that made it.

type entry struct {
	key, value []byte
}

// iterator walks a sorted snapshot of rows.
type iterator struct {
	entries []entry
	pos     int
}

// Next advances to the next row of the snapshot.
func (it *iterator) Next() bool {
	if it.pos+1 >= len(it.entries) {
		it.pos = len(it.entries)
		return false
	}
	it.pos++
	return true
}

// Key returns the current row's key, or nil when not on a row.
func (it *iterator) Key() []byte {
	if it.pos < 0 || it.pos >= len(it.entries) {
		return nil
	}
	return it.entries[it.pos].key
}

// Value returns the current row's value, or nil when not on a row.
func (it *iterator) Value() []byte {
	if it.pos < 0 || it.pos >= len(it.entries) {
		return nil
	}
	return it.entries[it.pos].value
}

// Err always returns nil: walking a snapshot in memory cannot fail.
func (it *iterator) Err() error { return nil }

// Close releases the snapshot.
func (it *iterator) Close() error {
	it.entries = nil
	it.pos = 0
	return nil
}
