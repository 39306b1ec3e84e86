package pebble

// The table files that loaders write. A chunk's file is written once,
// synced, and handed to Pebble's Ingest, which links it into the database;
// Pebble rewrites it like any other file when it next compacts its level.
// So the file is made for being written fast rather than for lying in the
// database long: rows in blocks of the row format, which costs about half
// the CPU of the columnar one to write, written through a buffer large
// enough that a file takes a few writes rather than one per block.

import (
	"bufio"
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2/objstorage"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// loadFileFormat is the format of the table files loaders write: the newest
// of the row format, which every format of the database can ingest and read.
const loadFileFormat = sstable.TableFormatPebblev4

// loadFileBuffer is the size of the buffer a table file is written through,
// so that a file of a few megabytes takes a few writes rather than one per
// block.
const loadFileBuffer = 256 << 10

// writeFile writes the changes of b of entries order, sorted, the
// checkpoint offset and the row count rows as a table file at path, synced,
// as Ingest requires.
func (l *loader) writeFile(path string, b *loadBuffer, order []loadEntry, offset, rows int64) error {
	s := l.s
	fs := s.db.opts.FS
	if !l.dirMade {
		if err := fs.MkdirAll(s.db.loadDir, 0o755); err != nil {
			return err
		}
		l.dirMade = true
	}
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if l.buf == nil {
		l.buf = bufio.NewWriterSize(f, loadFileBuffer)
	}
	l.buf.Reset(f)
	w := sstable.NewWriter(&loadFile{f: f, buf: l.buf}, s.db.opts.MakeWriterOptions(0, loadFileFormat))
	// The store's own keys sort before its rows: the checkpoint, then the
	// row count.
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(offset))
	err = w.Set(s.keys.offset, v[:])
	switch {
	case err != nil:
	case s.counting:
		binary.BigEndian.PutUint64(v[:], uint64(rows))
		err = w.Set(s.keys.rows, v[:])
	case s.staleCount.Load():
		err = w.Delete(s.keys.rows)
	}
	for j, e := range order {
		if err != nil {
			break
		}
		if j%touchAhead == 0 {
			// The keys of the next group, ahead of the ones being
			// written.
			lo := min(j+touchAhead/2, len(order))
			l.touched ^= b.touch(order[lo:min(lo+touchAhead, len(order))])
		}
		if e.valueLen < 0 && !l.wrote {
			continue // no earlier chunk wrote a row to delete
		}
		l.key = s.keys.row(l.key[:0], b.key(e))
		if e.valueLen < 0 {
			err = w.Delete(l.key)
			continue
		}
		err = w.Set(l.key, b.value(e))
	}
	// Close writes the file out, syncs and closes it, and must be called
	// whatever went wrong before.
	return errors.Join(err, w.Close())
}

// loadFile is the objstorage.Writable of a table file a loader writes: the
// file, through a buffer of the loader's, synced when finished.
type loadFile struct {
	f   vfs.File
	buf *bufio.Writer
}

var _ objstorage.Writable = (*loadFile)(nil)

func (w *loadFile) Write(p []byte) error {
	_, err := w.buf.Write(p)
	return err
}

func (w *loadFile) Finish() error {
	err := w.buf.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	w.buf.Reset(nil)
	return errors.Join(err, w.f.Close())
}

func (w *loadFile) Abort() {
	w.buf.Reset(nil)
	_ = w.f.Close()
}
