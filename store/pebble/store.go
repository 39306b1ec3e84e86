package pebble

// Invariants of this file:
//
// Durability. The write-ahead log is disabled (DisableWAL) and Apply commits
// with NoSync, because the Kafka changelog, not this database, is the source
// of truth. Each Apply is one Pebble batch holding its rows and its
// checkpoint; a batch is atomic and lands whole in one memtable (one too
// large for a memtable becomes a memtable of its own), and memtables are
// flushed whole and in order. After a crash Pebble reopens at its last
// flushed memtable, which therefore holds the rows and the checkpoint of a
// prefix of the Apply calls, each as a whole. The store is never ahead of its
// checkpoint, only possibly behind it, and the task catches up by replaying
// the changelog from the checkpoint. Clear is one batch too, so a crash may
// undo it, never half of it. Close flushes before closing, so a clean stop
// loses nothing. TestCrashLeavesRowsThatMatchTheirCheckpoint checks this.
//
// Key layout. A store owns the keys that start with its prefix: empty for a
// store from Open, which has its database to itself, and the table name, a
// zero byte and the big-endian partition for a store from a Builder, whose
// stores share one database (see builder.go). No table name holds a zero
// byte, so no prefix is the start of another, and the stores' keys never
// mix. After the prefix comes one byte: metaPrefix for the store's own keys
// (the checkpoint, and the row count), rowPrefix followed by the user's key
// for rows. Row keys therefore sort in the user's byte order, never collide
// with the checkpoint, and all lie in [prefix+rowPrefix, prefix+endPrefix);
// everything the store holds lies in [prefix+metaPrefix, prefix+endPrefix).
//
// A shared database keeps the durability argument above: memtables hold the
// batches of every store in commit order and are flushed whole and in
// order, so after a crash each store holds a prefix of its own Apply calls.
//
// Row count. With CountRows, each Apply reads the keys it changes to learn
// whether they hold a row, and writes the new count in its batch, next to
// the checkpoint, so the count is always that of the rows beside it. Without
// CountRows a store writes no count, and its first Apply deletes one left by
// an earlier, counting, opening, so that a count found on disk is never
// stale.
//
// Concurrency. mu guards closed and the lifetime of db: every method holds
// it for reading while it uses db, and Close holds it for writing, so db is
// never used after it is closed. Iterators outlive the calls that make them,
// so the store also tracks them in iters and closes any left open in Close,
// as Pebble requires before DB.Close.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/sluice-io/sluice/store"
)

// ErrClosed is returned by every method of a store, and of its iterators,
// after the store is closed.
var ErrClosed = errors.New("pebble store: closed")

const (
	metaPrefix byte = 0x00
	rowPrefix  byte = 0x01
	endPrefix  byte = 0x02
)

// Open opens the store kept in dir, creating dir and an empty store if they
// do not exist. The store has a database, and a memory budget, of its own;
// use a Builder for stores that share one.
func Open(dir string, opts ...Opt) (store.Store, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble store %s: %w", dir, err)
	}
	db, err := openDB(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pebble store %s: %w", dir, err)
	}
	s, err := newStore(dir, db, nil, cfg, db.Close)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return ownStore{s}, nil
}

type pebbleStore struct {
	dir  string // names the store in errors: its directory, or dir/table/partition
	keys keys

	mu     sync.RWMutex
	db     *engine
	closed bool

	itersMu sync.Mutex
	iters   map[*iterator]struct{}

	counting   bool         // CountRows
	rows       atomic.Int64 // the row count, when counting
	staleCount atomic.Bool  // not counting, and the database holds a count

	loading atomic.Pointer[loader] // the open loader, if any (see loader.go)

	// applyMu makes the store's Applies one at a time: they sort their
	// changes in order and scratch (ranges.go).
	applyMu        sync.Mutex
	order, scratch []sortKey

	// release lets go of db once the store is done with it: it closes a
	// database of the store's own, or drops the store's hold on a shared one.
	release func() error
}

// newStore returns the store of the keys of db that start with prefix,
// named name in errors. The store calls release once it is closed; on
// failure release is not called.
func newStore(name string, db *engine, prefix []byte, cfg config, release func() error) (*pebbleStore, error) {
	s := &pebbleStore{dir: name, keys: newKeys(prefix), db: db, iters: map[*iterator]struct{}{}, release: release, counting: cfg.countRows}
	if err := s.loadCount(); err != nil {
		return nil, fmt.Errorf("open pebble store %s: %w", name, err)
	}
	return s, nil
}

// loadCount reads the row count kept on disk. A counting store without one
// counts its rows, once; a store that does not count notes that a count on
// disk must go.
func (s *pebbleStore) loadCount() error {
	n, found, err := s.readInt(s.keys.rows)
	if err != nil {
		return fmt.Errorf("read row count: %w", err)
	}
	if !s.counting {
		s.staleCount.Store(found)
		return nil
	}
	if found {
		s.rows.Store(n)
		return nil
	}
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: s.keys.rowLo, UpperBound: s.keys.rowHi})
	if err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	n = 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	if err := s.db.Set(s.keys.rows, v[:], pebbledb.NoSync); err != nil {
		return fmt.Errorf("write row count: %w", err)
	}
	s.rows.Store(n)
	return nil
}

// readInt reads an 8-byte integer kept under a meta key.
func (s *pebbleStore) readInt(key []byte) (n int64, found bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%q is %d bytes, want 8", key[len(s.keys.prefix)+1:], len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// hasRow reports whether the database holds a row under the prefixed key k.
func (s *pebbleStore) hasRow(k []byte) (bool, error) {
	_, closer, err := s.db.Get(k)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// Rows returns the row count of a store opened with CountRows; it
// implements store.RowCounter.
func (s *pebbleStore) Rows() (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.counting || s.closed {
		return 0, false
	}
	return s.rows.Load(), true
}

// canonicalDir creates dir and returns its absolute path with symbolic links
// resolved. Pebble refuses a second lock on a directory within one process
// only when both spell its path alike, so every store must spell it the same.
func canonicalDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// Get returns a copy of the value stored under key, or store.ErrNotFound.
func (s *pebbleStore) Get(key []byte) ([]byte, error) {
	var buf [64]byte
	k := s.keys.row(buf[:0], key)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pebble store %s: get: %w", s.dir, err)
	}
	// v is valid only until closer is closed. A non-nil copy keeps an empty
	// value distinct from a missing one.
	out := append(make([]byte, 0, len(v)), v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("pebble store %s: get: %w", s.dir, err)
	}
	return out, nil
}

// Apply writes changes and the checkpoint in one batch.
func (s *pebbleStore) Apply(changes []store.Change, offset int64) error {
	return s.ApplyRanges(changes, nil, offset)
}

// Offset reads the checkpoint, or returns -1 when there is none.
func (s *pebbleStore) Offset() (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	v, closer, err := s.db.Get(s.keys.offset)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pebble store %s: read checkpoint: %w", s.dir, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("pebble store %s: checkpoint is %d bytes, want 8", s.dir, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Iter returns an iterator over a consistent view of the rows in [lo, hi):
// Pebble iterators read at the sequence number current when they are made.
func (s *pebbleStore) Iter(lo, hi []byte) (store.Iterator, error) {
	lower := s.keys.row(nil, lo)
	upper := s.keys.rowHi
	if hi != nil {
		upper = s.keys.row(nil, hi)
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if string(lower) >= string(upper) {
		return &iterator{}, nil
	}
	pit, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("pebble store %s: iter: %w", s.dir, err)
	}
	it := &iterator{s: s, it: pit}
	s.itersMu.Lock()
	s.iters[it] = struct{}{}
	s.itersMu.Unlock()
	return it, nil
}

// Clear deletes every row and the checkpoint with one range deletion. The
// space is reclaimed as Pebble compacts.
func (s *pebbleStore) Clear() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.loading.Load() != nil {
		return fmt.Errorf("pebble store %s: clear: %w", s.dir, errLoading)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(s.keys.all, s.keys.rowHi, nil); err != nil {
		return fmt.Errorf("pebble store %s: clear: %w", s.dir, err)
	}
	if s.counting {
		if err := b.Set(s.keys.rows, make([]byte, 8), nil); err != nil {
			return fmt.Errorf("pebble store %s: clear: %w", s.dir, err)
		}
	}
	if err := b.Commit(pebbledb.NoSync); err != nil {
		return fmt.Errorf("pebble store %s: clear: %w", s.dir, err)
	}
	s.rows.Store(0)
	s.staleCount.Store(false)
	return nil
}

// ownStore is a store from Open, which has its database to itself. Unlike
// the stores of a Builder, it flushes its memtable when sluice asks, after a
// restore: the memtable holds only its own rows.
type ownStore struct{ *pebbleStore }

// Flush starts writing the memtable to disk in the background, so that what
// was applied so far survives a crash. It implements store.Flusher.
//
// The stores of a Builder do not implement it: their database's memtable
// holds the changes of all of them, so flushing it whenever one partition is
// restored would write small table files, each spanning every partition
// being restored, that compactions then merge again (it made a restore of a
// million rows over 10 partitions take 40% more CPU). Their memtables are
// bounded by the Builder's budget, which bounds what a crash after a
// restore makes the next start restore again.
func (s ownStore) Flush() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.db.AsyncFlush(); err != nil {
		return fmt.Errorf("pebble store %s: flush: %w", s.dir, err)
	}
	return nil
}

// Close closes iterators left open, flushes the memtable so that every Apply
// is on disk, and lets go of the database: a store from Open closes it,
// releasing its lock on the directory and its memory; a store from a
// Builder leaves that to the last of the Builder's stores to close. Every
// later call returns ErrClosed.
func (s *pebbleStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if l := s.loading.Swap(nil); l != nil {
		l.release() // what it holds was never written
	}

	s.itersMu.Lock()
	leaked := make([]*iterator, 0, len(s.iters))
	for it := range s.iters {
		leaked = append(leaked, it)
	}
	s.iters = nil
	s.itersMu.Unlock()
	var errs []error
	for _, it := range leaked {
		errs = append(errs, it.closeForStore())
	}

	if err := s.db.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flush: %w", err))
	}
	// Release even when the flush failed, to release the directory lock.
	if err := s.release(); err != nil {
		errs = append(errs, err)
	}
	s.db = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pebble store %s: close: %w", s.dir, err)
	}
	return nil
}

// forget drops it from the iterators Close must close.
func (s *pebbleStore) forget(it *iterator) {
	s.itersMu.Lock()
	delete(s.iters, it)
	s.itersMu.Unlock()
}
