package pebble

// Invariants of this file: the stores opened on one directory share one
// database, each under a key prefix of its own (see store.go), whichever of
// the process's Builders opened them, since Pebble locks the directory: the
// processors of a group in one process may each have a Builder of the same
// directory. databases holds the open databases by directory; its mutex
// guards it and every entry. A database is opened with its first store and
// closed after its last is closed, so a directory without open stores holds
// no memory and no lock. A table partition is in open from the moment build
// hands out its store until that store is closed, so no two stores of one
// partition are open at once.

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/sluice-io/sluice/store"
)

// Builder returns a store.Builder that keeps every store it opens in one
// Pebble database in dir, creating it if needed: the store of partition p of
// table t holds the keys that start with t and p. The stores therefore share
// one memory budget (MemoryBudget) however many partitions are open, a
// restore writes into its partition's keys, and Clear deletes them with one
// range deletion. Each Apply stays one atomic batch, holding the rows and
// the checkpoint of its partition.
//
// The database is opened with the first store and closed with the last.
// Builders of the same dir in one process share it, with the options of the
// one that opened it; Pebble locks dir meanwhile, so another process cannot
// open stores in it. A table name must not be empty or hold a zero byte, a
// slash or a backslash; Kafka topic names always qualify.
func Builder(dir string, opts ...Opt) store.Builder {
	b := &builder{dir: dir, opts: opts}
	return b.build
}

type builder struct {
	dir  string
	opts []Opt
}

// databases are the databases that Builders hold open, by directory.
var databases = struct {
	sync.Mutex
	m map[databaseKey]*database
}{m: map[databaseKey]*database{}}

// databaseKey names a database: its canonical path, and the file system of
// a test that simulates crashes (nil otherwise).
type databaseKey struct {
	path string
	fs   vfs.FS
}

type database struct {
	db   *engine
	open map[string]bool // prefixes of the stores open
}

func (b *builder) build(table string, partition int32) (store.Store, error) {
	name := filepath.Join(b.dir, table, strconv.Itoa(int(partition)))
	// The table name is a key prefix, not a directory, but the rules that
	// kept it a single path element still hold, so that names stay as they
	// were and a zero byte can end it.
	if table == "" || table == "." || table == ".." || strings.ContainsAny(table, `/\`+"\x00") {
		return nil, fmt.Errorf("open pebble store for table %q: table name is not a single path element", table)
	}
	if partition < 0 {
		return nil, fmt.Errorf("open pebble store for %s/%d: partition is negative", table, partition)
	}
	cfg, err := newConfig(b.opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble store %s: %w", name, err)
	}
	key := databaseKey{path: b.dir, fs: cfg.fs}
	if cfg.fs == nil {
		if key.path, err = canonicalDir(b.dir); err != nil {
			return nil, fmt.Errorf("open pebble store %s: %w", name, err)
		}
	}
	prefix := binary.BigEndian.AppendUint32(append([]byte(table), 0), uint32(partition))

	databases.Lock()
	defer databases.Unlock()
	d := databases.m[key]
	if d == nil {
		db, err := openDB(key.path, cfg)
		if err != nil {
			return nil, fmt.Errorf("open pebble store %s: database %s: %w", name, b.dir, err)
		}
		d = &database{db: db, open: map[string]bool{}}
		databases.m[key] = d
	}
	if d.open[string(prefix)] {
		return nil, fmt.Errorf("open pebble store %s: already open", name)
	}
	s, err := newStore(name, d.db, prefix, cfg, func() error { return release(key, prefix) })
	if err != nil {
		if len(d.open) == 0 {
			_ = d.db.Close()
			delete(databases.m, key)
		}
		return nil, err
	}
	d.open[string(prefix)] = true
	return s, nil
}

// release records that the store of prefix in the database of key is
// closed, and closes the database when it was the last open store.
func release(key databaseKey, prefix []byte) error {
	databases.Lock()
	defer databases.Unlock()
	d := databases.m[key]
	delete(d.open, string(prefix))
	if len(d.open) > 0 {
		return nil
	}
	delete(databases.m, key)
	return d.db.Close()
}
