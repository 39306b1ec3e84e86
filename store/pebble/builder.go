package pebble

// Invariant of this file: the block cache is reference counted, and each
// holder releases only its own reference. The builder holds one reference
// from the moment it creates the cache for its first open store until its
// last open store is closed; each database holds another, which Pebble takes
// on Open and drops on Close. The next store opened after that gets a new
// cache, so a builder that has no open stores holds no memory.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/sluice-io/sluice/store"
)

// Builder returns a store.Builder that opens the store of partition p of
// table t in dir/t/p, creating it if needed. Every store it opens shares one
// block cache of CacheSize bytes; the other options apply to each store.
//
// A table name must be a single path element: not empty, not "." or "..",
// and without a path separator. Kafka topic names always qualify.
func Builder(dir string, opts ...Opt) store.Builder {
	b := &builder{dir: dir, opts: opts}
	return b.build
}

type builder struct {
	dir  string
	opts []Opt

	mu    sync.Mutex
	cache *pebbledb.Cache // nil while open is zero
	open  int             // stores opened and not yet closed
}

func (b *builder) build(table string, partition int32) (store.Store, error) {
	if table == "" || table == "." || table == ".." || strings.ContainsAny(table, `/\`+"\x00") {
		return nil, fmt.Errorf("open pebble store for table %q: table name is not a single path element", table)
	}
	if partition < 0 {
		return nil, fmt.Errorf("open pebble store for %s/%d: partition is negative", table, partition)
	}
	dir := filepath.Join(b.dir, table, strconv.Itoa(int(partition)))
	cfg, err := newConfig(b.opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble store %s: %w", dir, err)
	}

	b.mu.Lock()
	if b.cache == nil {
		b.cache = pebbledb.NewCache(cfg.cacheSize)
	}
	cache := b.cache
	b.open++
	b.mu.Unlock()

	s, err := open(dir, cfg, cache, b.release)
	if err != nil {
		b.release()
		return nil, err
	}
	return s, nil
}

// release records that a store opened by build is gone, and drops the
// builder's reference to the cache when it was the last.
func (b *builder) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open--
	if b.open == 0 {
		b.cache.Unref()
		b.cache = nil
	}
}
