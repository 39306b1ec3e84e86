package pebble

import "testing"

// A memory budget gives the memtable a sixteenth of it and the loaders a
// quarter; MemTableSize and CacheSize after it change their part alone.
func TestMemoryBudgetSplitsBetweenMemtableLoadersAndCache(t *testing.T) {
	for _, c := range []struct {
		name                  string
		opts                  []Opt
		cache, memtable, load int64
	}{
		{"default", nil, 128 << 20, 8 << 20, 32 << 20},
		{"budget", []Opt{MemoryBudget(64 << 20)}, 64 << 20, 4 << 20, 16 << 20},
		{"budget then memtable", []Opt{MemoryBudget(64 << 20), MemTableSize(1 << 20)}, 64 << 20, 1 << 20, 16 << 20},
		{"budget then cache", []Opt{MemoryBudget(64 << 20), CacheSize(8 << 20)}, 8 << 20, 4 << 20, 16 << 20},
	} {
		cfg, err := newConfig(c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.cacheSize != c.cache || int64(cfg.memTableSize) != c.memtable || cfg.loadBudget != c.load {
			t.Errorf("%s: cache %d, memtable %d, loaders %d; want %d, %d, %d",
				c.name, cfg.cacheSize, cfg.memTableSize, cfg.loadBudget, c.cache, c.memtable, c.load)
		}
	}
}
