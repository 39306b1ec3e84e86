package pebble

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Opt configures the stores opened by Open or by a Builder.
type Opt interface {
	apply(*config)
}

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

const (
	defaultCacheSize    = 64 << 20
	defaultMemTableSize = 32 << 20
)

type config struct {
	cacheSize    int64
	memTableSize uint64
	countRows    bool
	// fs replaces the operating system's file system; only tests set it, to
	// simulate crashes.
	fs vfs.FS
}

func newConfig(opts []Opt) (config, error) {
	c := config{cacheSize: defaultCacheSize, memTableSize: defaultMemTableSize}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.cacheSize < 0 {
		return c, fmt.Errorf("cache size %d is negative", c.cacheSize)
	}
	if c.memTableSize == 0 {
		return c, fmt.Errorf("memtable size must be positive")
	}
	return c, nil
}

// CacheSize sets the size in bytes of the block cache, which holds
// uncompressed blocks read from disk. The default is 64 MiB.
//
// A Builder shares one cache of this size among every store it opens; a store
// from Open gets a cache of its own. Memory is taken as blocks are read, not
// up front. Pebble counts the memtables of the stores that share a cache
// against its size, so with many busy stores the cache holds fewer blocks and
// reads fall through to the operating system's page cache. Zero disables
// block caching; a negative size makes opening fail.
func CacheSize(bytes int64) Opt {
	return optFunc(func(c *config) { c.cacheSize = bytes })
}

// MemTableSize sets the size in bytes of a store's in-memory write buffer,
// its memtable, which is written to disk as a table file when full. The
// default is 32 MiB: restoring a partition of a few hundred thousand rows
// then writes one table file instead of several that must be compacted.
// Pebble starts a store with a small memtable and grows it up to this size
// as writes arrive, so idle stores do not use it.
//
// A store can hold a full memtable being flushed while it fills the next, so
// n busy stores use up to 2n times this size. Rows not yet flushed are lost
// in a crash and restored from the changelog, so a larger memtable trades
// memory and restore time for fewer, larger writes. Zero makes opening fail,
// and so does 4 GiB or more.
func MemTableSize(bytes uint64) Opt {
	return optFunc(func(c *config) { c.memTableSize = bytes })
}

// CountRows makes a store keep an exact count of its rows, which it reports
// as a store.RowCounter; sluice shows it as a table's or a view's rows.
// Pebble cannot tell whether a write adds a row without reading the key, so
// Apply then reads every key it changes first, which makes it about four
// times as slow: 1.5 ms instead of 0.37 ms for an Apply of 1,000 changes of
// 20-byte keys to rows that mostly exist (BenchmarkApplyCountingRows). The count is kept with the checkpoint in
// each Apply. A store last written without CountRows counts its rows once,
// by reading them all, when it is next opened with it. Default: off; a
// store without it reports no count.
func CountRows() Opt {
	return optFunc(func(c *config) { c.countRows = true })
}
