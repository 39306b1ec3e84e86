package pebble

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

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

// The stores of a Builder share one database and its memtables; after a
// crash each must still hold a whole prefix of its own Apply calls, whatever
// the other stores wrote between them.
func TestCrashLeavesEachSharedStoreAtItsOwnCheckpoint(t *testing.T) {
	fs := vfs.NewCrashableMem()
	onFS := func(fs vfs.FS) Opt { return optFunc(func(c *config) { c.fs = fs }) }
	opts := []Opt{CacheSize(1 << 20), MemTableSize(256 << 10)}
	build := Builder("db", append(opts, onFS(fs))...)
	var stores []store.Store
	for p := range int32(3) {
		s, err := build("t", p)
		if err != nil {
			t.Fatalf("build t/%d: %v", p, err)
		}
		stores = append(stores, s)
	}
	rng := rand.New(rand.NewPCG(2, 50))
	const applies = 90
	crashes := 0
	for i := range applies {
		for p, s := range stores {
			if p == 2 && i%3 != 0 {
				continue // a store that writes less often than the others
			}
			at := int64(i)
			if p == 2 {
				at = int64(i / 3)
			}
			changes := []store.Change{
				{Key: rowKey(int(at)), Value: []byte("row")},
				{Key: []byte("last"), Value: fmt.Appendf(nil, "%d", at)},
			}
			for j := range 30 {
				changes = append(changes, store.Change{Key: fmt.Appendf(nil, "filler-%03d-%03d", i, j), Value: bytes.Repeat([]byte{'f'}, 100)})
			}
			if err := s.Apply(changes, at); err != nil {
				t.Fatalf("apply %d to t/%d: %v", at, p, err)
			}
		}
		if i%7 != 3 {
			continue
		}
		crashes++
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
		recovered := Builder("db", append(opts, onFS(crashed))...)
		var kept []int64
		for p := range int32(3) {
			s, err := recovered("t", p)
			if err != nil {
				t.Fatalf("open t/%d after crash: %v", p, err)
			}
			applied := int64(i)
			if p == 2 {
				applied = int64(i / 3)
			}
			kept = append(kept, checkRows(t, s, applied))
			if err := s.Close(); err != nil {
				t.Fatalf("close t/%d after crash: %v", p, err)
			}
		}
		t.Logf("after apply %d a crash kept checkpoints %v", i, kept)
	}
	for p, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatalf("close t/%d: %v", p, err)
		}
	}
	if crashes == 0 {
		t.Fatal("no crash simulated")
	}
}

func rowKey(i int) []byte { return fmt.Appendf(nil, "row-%04d", i) }

func openOn(t *testing.T, cfg config) *pebbleStore {
	t.Helper()
	db, err := openDB("db", cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	s, err := newStore("db", db, nil, cfg, db.Close)
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
	return checkRows(t, s, applied)
}

// checkRows checks that the rows of s match its checkpoint and that it is
// not ahead of applied, and returns the checkpoint.
func checkRows(t *testing.T, s store.Store, applied int64) int64 {
	t.Helper()
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

// A bulk load into one store of a shared database ingests table files while
// the other stores keep their changes in the memtable. After a crash at any
// point, the loaded store must hold whole chunks up to its checkpoint and
// the others a prefix of their own Apply calls, and the loaded store must
// reopen, load nothing more, and take Apply calls from its checkpoint.
func TestCrashDuringBulkLoadLeavesEachSharedStoreAtItsOwnCheckpoint(t *testing.T) {
	fs := vfs.NewCrashableMem()
	onFS := func(fs vfs.FS) Opt { return optFunc(func(c *config) { c.fs = fs }) }
	// A loader of a 4 MiB budget writes a chunk at 512 KiB. Counting rows
	// puts the loaded store's row count in the memtable when it opens, so
	// that its first chunk overlaps the memtable: Pebble queues such an
	// ingestion behind the memtable, and the next chunk behind it.
	opts := []Opt{MemoryBudget(4 << 20), CountRows()}
	build := Builder("db", append(opts, onFS(fs))...)
	live, err := build("t", 0)
	if err != nil {
		t.Fatalf("build t/0: %v", err)
	}
	loaded, err := build("t", 1)
	if err != nil {
		t.Fatalf("build t/1: %v", err)
	}
	l, err := loaded.(store.BulkLoader).BulkLoad()
	if err != nil {
		t.Fatalf("bulk load t/1: %v", err)
	}
	rng := rand.New(rand.NewPCG(3, 50))
	const applies = 300
	filler := func(i int) []store.Change {
		var changes []store.Change
		for j := range 40 {
			changes = append(changes, store.Change{Key: fmt.Appendf(nil, "filler-%03d-%03d", i, j), Value: bytes.Repeat([]byte{'f'}, 100)})
		}
		return changes
	}
	var kept [][2]int64
	for i := range applies {
		changes := append([]store.Change{
			{Key: rowKey(i), Value: []byte("row")},
			{Key: []byte("last"), Value: fmt.Appendf(nil, "%d", i)},
		}, filler(i)...)
		if err := live.Apply(changes, int64(i)); err != nil {
			t.Fatalf("apply %d to t/0: %v", i, err)
		}
		if err := l.Apply(changes, int64(i)); err != nil {
			t.Fatalf("load %d into t/1: %v", i, err)
		}
		if i%23 != 11 {
			continue
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
		recovered := Builder("db", append(opts, onFS(crashed))...)
		var at [2]int64
		for p := range int32(2) {
			s, err := recovered("t", p)
			if err != nil {
				t.Fatalf("open t/%d after crash: %v", p, err)
			}
			at[p] = checkRows(t, s, int64(i))
			if n, ok := s.(store.RowCounter).Rows(); !ok || n != countRows(t, s) {
				t.Errorf("t/%d at checkpoint %d counts %d rows (%v), holds %d", p, at[p], n, ok, countRows(t, s))
			}
			if p == 1 && at[p] >= 0 {
				if l, err := s.(store.BulkLoader).BulkLoad(); err == nil {
					_ = l.Close()
					t.Errorf("bulk load of a recovered store at checkpoint %d succeeded", at[p])
				}
				next := at[p] + 1
				if err := s.Apply([]store.Change{{Key: rowKey(int(next)), Value: []byte("row")}, {Key: []byte("last"), Value: fmt.Appendf(nil, "%d", next)}}, next); err != nil {
					t.Fatalf("apply to recovered t/1: %v", err)
				}
				checkRows(t, s, next)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close t/%d after crash: %v", p, err)
			}
		}
		kept = append(kept, at)
	}
	t.Logf("checkpoints (live, loaded) after crashes: %v", kept)
	if kept[len(kept)-1][1] < 0 {
		t.Error("no crash kept a chunk of the load")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close loader: %v", err)
	}
	checkRows(t, loaded, applies-1)
	for _, s := range []store.Store{live, loaded} {
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
}

// countRows counts the rows of s by reading them.
func countRows(t *testing.T, s store.Store) int64 {
	t.Helper()
	it, err := s.Iter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var n int64
	for it.Next() {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
