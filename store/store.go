package store

import "errors"

// ErrNotFound is returned by Get when a key has no row.
var ErrNotFound = errors.New("store: key not found")

// Store holds the rows of one partition of one table. Get and Iter may be
// called concurrently with Apply.
type Store interface {
	// Get returns the value stored under key, or ErrNotFound. The returned
	// slice belongs to the caller.
	Get(key []byte) ([]byte, error)

	// Apply writes changes in order and records offset as the checkpoint, in
	// one atomic step. A Change with a nil Value deletes its key, as a Kafka
	// tombstone does. Apply keeps no slice of changes once it returned: the
	// caller writes its next changes' keys over them.
	Apply(changes []Change, offset int64) error

	// Offset returns the checkpoint recorded by the last Apply, or -1 when
	// nothing was ever applied.
	Offset() (int64, error)

	// Iter returns an iterator over the rows whose keys lie in [lo, hi), in
	// ascending byte order. A nil lo starts at the first key; a nil hi runs
	// to the last.
	Iter(lo, hi []byte) (Iterator, error)

	// Clear removes every row and the checkpoint, for when the changelog no
	// longer matches the store (the topic was recreated or truncated).
	Clear() error

	// Close makes what was applied durable and releases the store.
	Close() error
}

// Flusher is implemented by stores that keep recent changes in memory and
// can be asked to start writing them to disk, so that a crash loses less.
// sluice calls Flush after restoring a partition. Flush returns once the
// write has started; the store stays usable meanwhile.
type Flusher interface {
	Flush() error
}

// RowCounter is implemented by stores that know how many rows they hold
// without reading them: the count changes with every Apply and Clear, in the
// same atomic step, so it is exact and costs a load to read. sluice reports
// a table's or a view's rows only from stores that count them; it never
// iterates a store to count its rows.
type RowCounter interface {
	// Rows returns the number of rows, and false when the store does not
	// count them (for a store that counts only when asked to, or closed).
	Rows() (n int64, ok bool)
}

// BulkLoader is implemented by stores that can be filled faster while they
// are empty than through Apply, by writing sorted rows in large chunks.
// sluice uses it to restore a store that has no checkpoint (a new machine, a
// new view, a cleared state dir) from a changelog it is far behind, and
// goes back to Apply once the restore reaches the end.
type BulkLoader interface {
	// BulkLoad returns a Loader that fills the store, or an error when the
	// store has a checkpoint or another Loader of it is open. Until the
	// Loader is closed, Apply and Clear of the store return an error; Get,
	// Iter and Offset see the chunks the Loader has written so far.
	BulkLoad() (Loader, error)
}

// Loader fills an empty store in chunks. It keeps the changes it is given
// in memory, up to a bound of its store's choosing, and writes them as one
// chunk, with the checkpoint given with the last of them, in one atomic
// step: of each key only its last change counts, and a delete removes a row
// that an earlier chunk wrote. The store's invariant holds for chunks as it
// does for Apply calls: after a crash the store holds the rows and the
// checkpoint of some chunk written, whole, and never rows its checkpoint
// does not account for. Changes held and not yet written are not visible,
// and a crash or a Close of the store without Close of the Loader loses
// them. A Loader is used by one goroutine at a time.
type Loader interface {
	// Apply takes changes and their checkpoint as Store.Apply does, and
	// writes a chunk when what the Loader holds reaches its bound.
	Apply(changes []Change, offset int64) error
	// Close writes what the Loader holds and ends the load: the store then
	// takes Apply calls again. It must be called once, even after an
	// error of Apply; later calls return an error.
	Close() error
}

// RangeDeleter is implemented by stores that can delete every row of a key
// range in one change, at a cost that does not grow with the rows: sluice
// uses it to purge closed windows, whose rows are a range.
type RangeDeleter interface {
	// ApplyRanges is Apply that first deletes every row in each of
	// ranges, in the same atomic step as changes and the checkpoint.
	ApplyRanges(changes []Change, ranges []Range, offset int64) error
}

// Range is the keys in [Lo, Hi).
type Range struct {
	Lo, Hi []byte
}

// Change is one row change: Value is the new value, or nil to delete Key.
type Change struct {
	Key   []byte
	Value []byte
}

// Iterator walks rows in key order. It must be closed.
type Iterator interface {
	// Next advances to the next row and reports whether there is one.
	Next() bool
	// Key returns the current row's key, valid until the next call to Next.
	Key() []byte
	// Value returns the current row's value, valid until the next call to Next.
	Value() []byte
	// Err returns the error that stopped iteration, if any.
	Err() error
	// Close releases the iterator.
	Close() error
}

// Builder opens the store of one partition of a table. Stores of different
// tables or partitions must not share rows.
type Builder func(table string, partition int32) (Store, error)
