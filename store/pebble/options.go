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

// defaultBudget is MemoryBudget's default.
const defaultBudget = 128 << 20

type config struct {
	cacheSize    int64
	memTableSize uint64
	// loadBudget is what the loaders of a database share (BulkLoad).
	loadBudget int64
	countRows  bool
	// fs replaces the operating system's file system; only tests set it, to
	// simulate crashes.
	fs vfs.FS
}

func newConfig(opts []Opt) (config, error) {
	var c config
	MemoryBudget(defaultBudget).apply(&c)
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

// MemoryBudget sets the memory in bytes that the stores of a Builder's
// directory share for their write buffers (memtables) and their block cache,
// however many tables and partitions are open; a store from Open has a budget
// of its own. The default is 128 MiB. A processor opens all its stores (its
// table, its joined tables) through one Builder, so the budget is the
// processor's; Builders of one directory in one process share the database,
// and the budget of the first to open it.
//
// The budget is the block cache's size, and Pebble counts memtables against
// it: a sixteenth of it is the largest memtable (8 MiB of the default), and
// with one filling while another is flushed and a third kept for reuse,
// memtables take at most three sixteenths, the cache the rest. A restore
// into an empty store holds its sorted chunks in a quarter of it (BulkLoad).
// Blocks are cached as they are read, so the memory is taken as it is
// needed, not up front; it is allocated outside the Go heap (with cgo) and
// not counted by GOGC or GOMEMLIMIT.
//
// What it does not cover: records fetched and not yet processed, which
// MaxBufferedBytes bounds per processor (32 MiB by default, plus the Kafka
// client's fetch in flight), records produced and not yet acknowledged, a
// table's rows cached in the Go heap, and Pebble's index and filter blocks
// of files not in the cache. A larger budget makes fewer, larger table files and keeps more rows
// in memory; a smaller one flushes more often. CacheSize and MemTableSize,
// given after it, set either part alone. A negative budget makes opening
// fail.
func MemoryBudget(bytes int64) Opt {
	return optFunc(func(c *config) {
		c.cacheSize = bytes
		c.memTableSize = uint64(max(bytes/16, 0))
		c.loadBudget = max(bytes/4, 0)
	})
}

// CacheSize sets the size in bytes of the block cache, which holds
// uncompressed blocks read from disk and against which Pebble counts the
// memtables. The default is MemoryBudget's, 128 MiB. Zero disables block
// caching; a negative size makes opening fail.
func CacheSize(bytes int64) Opt {
	return optFunc(func(c *config) { c.cacheSize = bytes })
}

// MemTableSize sets the size in bytes of the largest in-memory write buffer,
// or memtable, which is written to disk as a table file when full. The
// default is a sixteenth of MemoryBudget, 8 MiB. Pebble starts with a small
// memtable and doubles it, up to this size, as writes arrive. One memtable
// can fill while another is flushed, and Pebble keeps one more for reuse.
// Rows not yet flushed are lost in a crash and restored from the changelog.
// Zero makes opening fail, and so does 4 GiB or more.
//
// A memtable keeps every version of a row written since it was last
// flushed, so a table whose rows are written again and again (a count per
// key) fills it with versions, and a larger one makes each insert dearer:
// ten stores rewriting 1,000 rows each took about 560 CPU ns per change
// with 8 MiB and 970 with 32 MiB, flushes and compactions included
// (BenchmarkRewriteTenStores).
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
