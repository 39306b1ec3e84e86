package pebble

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/sluice-io/sluice/store"
)

// TestCrashLeavesRowsThatMatchTheirCheckpoint checks the durability invariant
// at the top of store.go: with the WAL disabled, a crash at any moment leaves
// the rows and checkpoint of a whole prefix of Apply calls.
//
// Apply number i writes row i, a filler to make memtables fill and flush on
// their own, and sets "last" to i. After a simulated crash, a store at
// checkpoint c must hold rows 0..c, no row past c, and "last" = c.
func TestCrashLeavesRowsThatMatchTheirCheckpoint(t *testing.T) {
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced data kept %d%%", unsynced), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			cfg := config{cacheSize: 1 << 20, memTableSize: 256 << 10, fs: fs}
			s := openOn(t, cfg)

			rng := rand.New(rand.NewPCG(1, uint64(unsynced)))
			const applies = 120
			var recovered []int64
			for i := range applies {
				changes := []store.Change{
					{Key: rowKey(i), Value: []byte("row")},
					{Key: []byte("last"), Value: fmt.Appendf(nil, "%d", i)},
				}
				for j := range 40 {
					changes = append(changes, store.Change{
						Key:   fmt.Appendf(nil, "filler-%03d-%03d", i, j),
						Value: bytes.Repeat([]byte{'f'}, 100),
					})
				}
				if err := s.Apply(changes, int64(i)); err != nil {
					t.Fatalf("apply %d: %v", i, err)
				}
				if i%7 == 3 {
					crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng})
					recovered = append(recovered, checkRecovered(t, crashed, int64(i)))
				}
			}
			t.Logf("checkpoints after crashes: %v", recovered)
			if recovered[len(recovered)-1] < 0 {
				t.Errorf("no crash kept any Apply; memtables never flushed")
			}

			// Close flushes, so a crash right after a clean stop loses nothing.
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng})
			if c := checkRecovered(t, crashed, applies-1); c != applies-1 {
				t.Errorf("after close and crash, checkpoint = %d, want %d", c, applies-1)
			}
		})
	}
}

func rowKey(i int) []byte { return fmt.Appendf(nil, "row-%04d", i) }

func openOn(t *testing.T, cfg config) *pebbleStore {
	t.Helper()
	cache := pebbledb.NewCache(cfg.cacheSize)
	defer cache.Unref()
	s, err := open("db", cfg, cache, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// checkRecovered opens the store on fs, checks that its rows match its
// checkpoint and that it is not ahead of applied, and returns the checkpoint.
func checkRecovered(t *testing.T, fs vfs.FS, applied int64) int64 {
	t.Helper()
	s := openOn(t, config{cacheSize: 1 << 20, memTableSize: 256 << 10, fs: fs})
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close recovered store: %v", err)
		}
	}()
	c, err := s.Offset()
	if err != nil {
		t.Fatalf("offset after crash: %v", err)
	}
	if c > applied {
		t.Fatalf("checkpoint %d after crash is ahead of the last Apply %d", c, applied)
	}
	last, err := s.Get([]byte("last"))
	switch {
	case c == -1 && !errors.Is(err, store.ErrNotFound):
		t.Errorf("no checkpoint, yet last = %q, %v", last, err)
	case c >= 0 && (err != nil || string(last) != fmt.Sprint(c)):
		t.Errorf("checkpoint %d, yet last = %q, %v", c, last, err)
	}
	for i := range int(applied) + 2 {
		_, err := s.Get(rowKey(i))
		if want := int64(i) <= c; want != (err == nil) {
			t.Errorf("checkpoint %d: row %d present = %v (err %v)", c, i, err == nil, err)
		}
	}
	return c
}
