package pebble

import (
	"sync/atomic"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// filterBitsPerKey is the size of the Bloom filter of every table file, in
// bits per key: 10 bits make about 1% of the reads of a missing key look
// into a file's blocks, for about 1.2 bytes of filter per row.
const filterBitsPerKey = 10

// engine is an open Pebble database and what its stores' loaders need to
// write table files for it.
type engine struct {
	*pebbledb.DB
	opts    *pebbledb.Options // as opened, with Pebble's defaults filled in
	loadDir string            // where loaders write table files before ingesting them

	// loadBudget bounds the changes that the loaders of the database hold
	// in memory together; loaders is how many are open.
	loadBudget int64
	loaders    atomic.Int64
}

// loadDirName is the directory, in a database's directory, of the table
// files that loaders write and Pebble then moves into the database. Files
// left in it by a crash are removed when the database is opened.
const loadDirName = "load"

// openDB opens the database in dir, creating it if needed, with a block
// cache of cfg's size that its memtables are counted against. Its errors do
// not name dir; the caller's do.
func openDB(dir string, cfg config) (*engine, error) {
	path := dir
	if cfg.fs == nil {
		var err error
		if path, err = canonicalDir(dir); err != nil {
			return nil, err
		}
	}
	cache := pebbledb.NewCache(cfg.cacheSize)
	// The database takes a reference of its own and drops it when closed, so
	// the reference NewCache returned is released here, opened or not.
	defer cache.Unref()
	o := &pebbledb.Options{
		Cache:              cache,
		MemTableSize:       cfg.memTableSize,
		DisableWAL:         true,
		FormatMajorVersion: pebbledb.FormatNewest,
		// Both are needed: Pebble derives its default event listener, which
		// logs background errors, from Logger before it looks at
		// LoggerAndTracer.
		Logger:          quietLogger{},
		LoggerAndTracer: quietLogger{},
	}
	// A row read most often finds nothing (a key's first record, a window
	// or timer that is new): without a filter, Pebble would look into every
	// file whose key range holds the key. Every level has one, and table
	// files written by the loaders take level 0's, so every file has a
	// filter.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(filterBitsPerKey)
		o.Levels[i].FilterType = pebbledb.TableFilter
	}
	if cfg.fs != nil {
		o.FS = cfg.fs
	}
	o.EnsureDefaults()
	db, err := pebbledb.Open(path, o)
	if err != nil {
		return nil, err
	}
	e := &engine{DB: db, opts: o, loadDir: o.FS.PathJoin(path, loadDirName), loadBudget: cfg.loadBudget}
	// Table files of a load that a crash interrupted were never ingested.
	if err := o.FS.RemoveAll(e.loadDir); err != nil {
		_ = db.Close()
		return nil, err
	}
	return e, nil
}
