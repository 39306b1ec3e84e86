package pebble

// Invariants of this file:
//
// A loader writes each chunk as one table file, holding the last change of
// each key the chunk took, the checkpoint and, with CountRows, the row
// count, and has Pebble ingest it. An ingestion is atomic and gets a
// sequence number above every write before it, so a later chunk overrides
// an earlier one, a delete in it hides a row an earlier chunk wrote, and
// after a crash the store holds the chunks ingested before it, each whole,
// with the checkpoint of the last: the store.Store invariant, with chunks for
// Apply calls. The first chunk of a store that was empty needs no deletes.
//
// The file's keys all lie within the store's prefix (see store.go), between
// its checkpoint and its last row, so an ingestion disturbs no other store of
// a shared database: Pebble waits for a memtable flush only when a memtable
// holds a key within the file's bounds, which for an empty store only its
// own Clear or row count can have put there. A chunk whose keys overlap the
// files of earlier chunks lands in a level above them, and compactions merge
// them as they do flushed memtables.
//
// While a loader is open (s.loading), Apply and Clear refuse to run: either
// could be overridden by a chunk ingested after it. The loader is used by
// one goroutine and holds the store's mu for reading while it writes a
// chunk, so the store cannot close under it; a store closed with its loader
// open drops what the loader holds.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluice-io/sluice/store"
)

// errLoading is what Apply and Clear return while a loader is open.
var errLoading = errors.New("a bulk load is in progress")

// minLoadChunk is the least a loader holds before it writes a chunk, however
// many loaders share the database's budget, so that many partitions
// restoring at once do not write many tiny files; it is capped by the
// budget itself.
const minLoadChunk = 1 << 20

// loadFiles numbers the table files that loaders write. A database's
// directory is locked by one process, so a counter of the process keeps
// their names apart.
var loadFiles atomic.Uint64

// loader implements store.Loader for a pebbleStore.
type loader struct {
	s *pebbleStore

	buf    loadBuffer
	offset int64 // the checkpoint of the last Apply
	held   bool  // an Apply since the last chunk was written
	wrote  bool  // a chunk was written: later ones may change its rows
	done   bool  // closed, or dropped by the store's Close
	key    []byte
}

// BulkLoad returns a loader that fills the store in chunks, each a sorted
// table file that Pebble ingests, instead of through the memtable. It
// implements store.BulkLoader. The loaders of a database share a quarter of
// its MemoryBudget (its largest memtable, which a restore through Apply
// would fill instead) for the changes they hold; each holds at least 1 MiB,
// or the whole quarter if that is less, before it writes a chunk. With
// CountRows, every chunk after the first reads the keys it changes, as
// Apply does.
func (s *pebbleStore) BulkLoad() (store.Loader, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	off, found, err := s.readInt(s.keys.offset)
	if err != nil {
		return nil, fmt.Errorf("pebble store %s: bulk load: read checkpoint: %w", s.dir, err)
	}
	if found {
		return nil, fmt.Errorf("pebble store %s: bulk load: the store has checkpoint %d; only an empty store can be loaded", s.dir, off)
	}
	l := &loader{s: s, offset: -1}
	if !s.loading.CompareAndSwap(nil, l) {
		return nil, fmt.Errorf("pebble store %s: bulk load: %w", s.dir, errLoading)
	}
	s.db.loaders.Add(1)
	return l, nil
}

// Apply copies changes into the loader and writes a chunk once the loader
// holds its share of the budget.
func (l *loader) Apply(changes []store.Change, offset int64) error {
	if l.done {
		return fmt.Errorf("pebble store %s: bulk load: loader closed", l.s.dir)
	}
	// A chunk holds whole Apply calls, so that its checkpoint accounts for
	// every change in it.
	if len(changes) > maxLoadEntries {
		return fmt.Errorf("pebble store %s: bulk load at offset %d: %d changes in one call, more than %d", l.s.dir, offset, len(changes), maxLoadEntries)
	}
	if l.buf.n+len(changes) > maxLoadEntries {
		if err := l.write(); err != nil {
			return err
		}
	}
	for _, c := range changes {
		l.buf.add(c.Key, c.Value, c.Value == nil)
	}
	l.offset, l.held = offset, true
	if l.buf.size() < l.bound() {
		return nil
	}
	return l.write()
}

// bound is the size at which the loader writes a chunk: its share of the
// budget of its database, with the other loaders open now.
func (l *loader) bound() int64 {
	db := l.s.db
	return max(db.loadBudget/max(db.loaders.Load(), 1), min(minLoadChunk, db.loadBudget))
}

// Close writes what the loader holds and lets the store take Apply calls
// again.
func (l *loader) Close() error {
	if l.done {
		return fmt.Errorf("pebble store %s: bulk load: loader closed", l.s.dir)
	}
	err := l.write()
	l.s.mu.RLock()
	// A Close of the store may have dropped the loader meanwhile.
	if l.s.loading.CompareAndSwap(l, nil) {
		l.release()
	}
	l.s.mu.RUnlock()
	l.done = true
	l.buf = loadBuffer{}
	return err
}

// release gives the loader's share of the budget back. It touches nothing
// else of the loader, for the store's Close calls it too.
func (l *loader) release() { l.s.db.loaders.Add(-1) }

// write sorts the changes held, keeps the last of each key, and writes them
// and the checkpoint as one table file that the database ingests.
func (l *loader) write() error {
	if !l.held {
		return nil
	}
	s := l.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.loading.Load() != l {
		return ErrClosed
	}
	// Of each key only the last change counts; count what they do to the
	// rows.
	order := l.buf.sorted()
	var delta int64
	kept := order[:0]
	for _, i := range order {
		e := l.buf.entry(uint32(i))
		exists := e.valueLen >= 0
		existed := false
		if l.wrote && s.counting {
			var err error
			l.key = s.keys.row(l.key[:0], l.buf.key(e))
			if existed, err = s.hasRow(l.key); err != nil {
				return fmt.Errorf("pebble store %s: bulk load at offset %d: count rows: %w", s.dir, l.offset, err)
			}
		}
		switch {
		case exists && !existed:
			delta++
		case !exists && existed:
			delta--
		}
		if exists || l.wrote {
			kept = append(kept, i)
		}
	}
	path := s.db.opts.FS.PathJoin(s.db.loadDir, strconv.FormatUint(loadFiles.Add(1), 10)+".sst")
	if err := l.writeFile(path, kept, s.rows.Load()+delta); err != nil {
		_ = s.db.opts.FS.Remove(path)
		return fmt.Errorf("pebble store %s: bulk load at offset %d: write table: %w", s.dir, l.offset, err)
	}
	// Ingest moves the file into the database.
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		_ = s.db.opts.FS.Remove(path)
		return fmt.Errorf("pebble store %s: bulk load at offset %d: ingest: %w", s.dir, l.offset, err)
	}
	s.rows.Add(delta)
	s.staleCount.Store(false)
	l.buf.reset()
	l.held, l.wrote = false, true
	return nil
}

// writeFile writes the changes held of indexes order, sorted, the
// checkpoint and the row count rows as a table file at path, synced, as
// Ingest requires.
func (l *loader) writeFile(path string, order []uint64, rows int64) error {
	s := l.s
	fs := s.db.opts.FS
	if err := fs.MkdirAll(s.db.loadDir, 0o755); err != nil {
		return err
	}
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), s.db.opts.MakeWriterOptions(0, s.db.TableFormat()))
	// The store's own keys sort before its rows: the checkpoint, then the
	// row count.
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(l.offset))
	err = w.Set(s.keys.offset, v[:])
	switch {
	case err != nil:
	case s.counting:
		binary.BigEndian.PutUint64(v[:], uint64(rows))
		err = w.Set(s.keys.rows, v[:])
	case s.staleCount.Load():
		err = w.Delete(s.keys.rows)
	}
	for _, i := range order {
		if err != nil {
			break
		}
		e := l.buf.entry(uint32(i))
		l.key = s.keys.row(l.key[:0], l.buf.key(e))
		if e.valueLen < 0 {
			err = w.Delete(l.key)
			continue
		}
		err = w.Set(l.key, l.buf.value(e))
	}
	// Close writes the file out, syncs and closes it, and must be called
	// whatever went wrong before.
	return errors.Join(err, w.Close())
}
