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
// one goroutine, and one more of its own writes a chunk while the next
// fills; the writer holds the store's mu for reading, so the store cannot
// close under it. A store closed with its loader open waits for the chunk
// being written, if any, and drops what the loader holds besides.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

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

// loader implements store.Loader for a pebbleStore. It fills one buffer
// while a goroutine of its own writes the chunk of the other, so that
// sorting and writing a chunk overlap the reading of the next; chunks are
// written one at a time and in order. Only the goroutine that writes a
// chunk touches wrote, key, buf and touched, and the next chunk starts
// after it is done.
type loader struct {
	s *pebbleStore

	cur     *loadBuffer // the changes of Apply calls since the last chunk
	spare   *loadBuffer
	offset  int64       // the checkpoint of the last Apply
	held    bool        // an Apply since the last chunk was handed to be written
	writing chan error  // receives the outcome of the chunk being written, if any
	written *loadBuffer // the buffer of the chunk being written
	err     error       // the first failure: no later chunk may be written
	done    bool        // closed

	wrote   bool // a chunk was written: later ones may change its rows
	dirMade bool // the directory of the table files exists
	key     []byte
	buf     *bufio.Writer // what table files are written through
	touched byte          // keeps the reads of loadBuffer.touch
}

// BulkLoad returns a loader that fills the store in chunks, each a sorted
// table file that Pebble ingests, instead of through the memtable. It
// implements store.BulkLoader. The loaders of a database share a quarter of
// its MemoryBudget for the changes they hold, the chunks being written
// included; each may hold at least 1 MiB, or the whole quarter if that is
// less. With CountRows, every chunk after the first reads the keys it
// changes, as Apply does.
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
	l := &loader{s: s, cur: &loadBuffer{}, offset: -1}
	if !s.loading.CompareAndSwap(nil, l) {
		return nil, fmt.Errorf("pebble store %s: bulk load: %w", s.dir, errLoading)
	}
	s.db.loaders.Add(1)
	return l, nil
}

// Apply copies changes into the loader and hands them to be written as a
// chunk once the loader holds its share of the budget.
func (l *loader) Apply(changes []store.Change, offset int64) error {
	if l.done {
		return fmt.Errorf("pebble store %s: bulk load: loader closed", l.s.dir)
	}
	if l.err != nil {
		return l.err
	}
	// A chunk holds whole Apply calls, so that its checkpoint accounts for
	// every change in it.
	if len(changes) > maxLoadEntries {
		return fmt.Errorf("pebble store %s: bulk load at offset %d: %d changes in one call, more than %d", l.s.dir, offset, len(changes), maxLoadEntries)
	}
	if l.cur.n+len(changes) > maxLoadEntries {
		if err := l.handOff(); err != nil {
			return err
		}
	}
	for _, c := range changes {
		l.cur.add(c.Key, c.Value, c.Value == nil)
	}
	l.offset, l.held = offset, true
	if l.cur.size() < l.bound() {
		return nil
	}
	return l.handOff()
}

// bound is the size at which the loader hands a chunk to be written: half
// its share of the budget of its database, with the other loaders open now,
// since it fills one chunk while it writes another.
func (l *loader) bound() int64 {
	db := l.s.db
	return max(db.loadBudget/max(db.loaders.Load(), 1), min(minLoadChunk, db.loadBudget)) / 2
}

// handOff waits for the chunk being written, and starts writing the
// changes held as the next.
func (l *loader) handOff() error {
	if err := l.wait(); err != nil {
		return err
	}
	if !l.held {
		return nil
	}
	b, offset := l.cur, l.offset
	l.cur, l.spare = l.spare, nil
	if l.cur == nil {
		l.cur = &loadBuffer{}
	}
	l.held = false
	l.written, l.writing = b, make(chan error, 1)
	go func() { l.writing <- l.write(b, offset) }()
	return nil
}

// wait waits until the chunk being written, if any, is ingested, and keeps
// its buffer for the chunk after next. A failure sticks: no later chunk may
// be written, for the store would then hold rows its checkpoint does not
// account for.
func (l *loader) wait() error {
	if l.writing == nil {
		return l.err
	}
	err := <-l.writing
	l.writing = nil
	l.written.reset()
	l.spare, l.written = l.written, nil
	if err != nil && l.err == nil {
		l.err = err
	}
	return l.err
}

// Close writes what the loader holds and lets the store take Apply calls
// again.
func (l *loader) Close() error {
	if l.done {
		return fmt.Errorf("pebble store %s: bulk load: loader closed", l.s.dir)
	}
	err := l.wait()
	if err == nil && l.held {
		err = l.write(l.cur, l.offset)
	}
	l.s.mu.RLock()
	// A Close of the store may have dropped the loader meanwhile.
	if l.s.loading.CompareAndSwap(l, nil) {
		l.release()
	}
	l.s.mu.RUnlock()
	l.done = true
	l.cur, l.spare = nil, nil
	return err
}

// release gives the loader's share of the budget back. It touches nothing
// else of the loader, for the store's Close calls it too.
func (l *loader) release() { l.s.db.loaders.Add(-1) }

// write sorts the changes of b, keeps the last of each key, and writes them
// and the checkpoint offset as one table file that the database ingests.
func (l *loader) write(b *loadBuffer, offset int64) error {
	s := l.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.loading.Load() != l {
		return ErrClosed
	}
	// Of each key only the last change counts. A store that counts its
	// rows learns first what they do to the count, which it writes before
	// them; the others read each change once, as they write it.
	order := b.sorted()
	var delta int64
	for _, e := range order {
		if !s.counting {
			break
		}
		exists := e.valueLen >= 0
		existed := false
		if l.wrote {
			var err error
			l.key = s.keys.row(l.key[:0], b.key(e))
			if existed, err = s.hasRow(l.key); err != nil {
				return fmt.Errorf("pebble store %s: bulk load at offset %d: count rows: %w", s.dir, offset, err)
			}
		}
		switch {
		case exists && !existed:
			delta++
		case !exists && existed:
			delta--
		}
	}
	path := s.db.opts.FS.PathJoin(s.db.loadDir, strconv.FormatUint(loadFiles.Add(1), 10)+".sst")
	if err := l.writeFile(path, b, order, offset, s.rows.Load()+delta); err != nil {
		_ = s.db.opts.FS.Remove(path)
		return fmt.Errorf("pebble store %s: bulk load at offset %d: write table: %w", s.dir, offset, err)
	}
	// Ingest moves the file into the database.
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		_ = s.db.opts.FS.Remove(path)
		return fmt.Errorf("pebble store %s: bulk load at offset %d: ingest: %w", s.dir, offset, err)
	}
	s.rows.Add(delta)
	s.staleCount.Store(false)
	l.wrote = true
	return nil
}
