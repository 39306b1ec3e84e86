package pebble_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
	"github.com/sluice-io/sluice/store/storetest"
)

func mustOpen(t testing.TB, dir string, opts ...pebble.Opt) store.Store {
	t.Helper()
	s, err := pebble.Open(dir, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

func mustClose(t testing.TB, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestPebbleStoreMeetsStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, t.TempDir()) })
}

func TestCountingPebbleStoreMeetsStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, t.TempDir(), pebble.CountRows()) })
}

// The row count survives a reopen; a store written without CountRows counts
// its rows when next opened with it, and never reports a stale count.
func TestRowCountSurvivesReopensWithAndWithoutCountRows(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, pebble.CountRows())
	storetest.MustApply(t, s, 0, storetest.Set("a", "1"), storetest.Set("b", "2"))
	closeStore(t, s)

	s = mustOpen(t, dir, pebble.CountRows())
	storetest.WantRows(t, s, 2)
	closeStore(t, s)

	s = mustOpen(t, dir)
	if n, ok := s.(store.RowCounter).Rows(); ok {
		t.Fatalf("a store opened without CountRows reports %d rows", n)
	}
	storetest.MustApply(t, s, 1, storetest.Set("c", "3"), storetest.Del("a"), storetest.Set("d", "4"))
	closeStore(t, s)

	s = mustOpen(t, dir, pebble.CountRows())
	storetest.WantRows(t, s, 3) // b, c, d: counted again
	storetest.MustApply(t, s, 2, storetest.Del("b"))
	storetest.WantRows(t, s, 2)
	closeStore(t, s)
}

func closeStore(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// A budget of 4 MiB makes a loader write a chunk at 1 MiB, so that the bulk
// load tests of the contract see several.
func TestSmallBudgetPebbleStoreMeetsStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, t.TempDir(), pebble.MemoryBudget(4<<20), pebble.CountRows())
	})
}

func TestBuilderStoresMeetStoreContract(t *testing.T) {
	build := pebble.Builder(t.TempDir(), pebble.MemoryBudget(4<<20))
	var partition int32
	storetest.Run(t, func(t *testing.T) store.Store {
		partition++
		s, err := build("table", partition)
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		return s
	})
}

func TestReopenAfterCloseKeepsRowsAndCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	storetest.MustApply(t, s, 41, storetest.Set("a", "1"), storetest.Set("b", "2"), storetest.Set("\x00", "z"))
	storetest.MustApply(t, s, 42, storetest.Del("b"), storetest.Set("c", "3"))
	mustClose(t, s)

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	storetest.WantOffset(t, s, 42)
	storetest.WantGet(t, s, "a", "1")
	storetest.WantMissing(t, s, "b")
	want := []storetest.Row{{Key: "\x00", Value: "z"}, {Key: "a", Value: "1"}, {Key: "c", Value: "3"}}
	if got := storetest.Rows(t, s, nil, nil); !slices.Equal(got, want) {
		t.Fatalf("rows after reopen = %q, want %q", got, want)
	}
}

func TestReopenAfterClearIsEmpty(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	storetest.MustApply(t, s, 7, storetest.Set("a", "1"))
	mustClose(t, s)

	s = mustOpen(t, dir)
	if err := s.Clear(); err != nil {
		t.Fatalf("clear: %v", err)
	}
	mustClose(t, s)

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	storetest.WantOffset(t, s, -1)
	if rows := storetest.Rows(t, s, nil, nil); len(rows) != 0 {
		t.Fatalf("rows after clear and reopen = %q, want none", rows)
	}
}

func TestReopenKeepsManyFlushedBatches(t *testing.T) {
	dir := t.TempDir()
	// A small memtable makes the rows span several flushed tables.
	s := mustOpen(t, dir, pebble.MemTableSize(256<<10))
	const batches, perBatch = 50, 200
	for b := range batches {
		changes := make([]store.Change, perBatch)
		for i := range changes {
			changes[i] = storetest.Set(strings.Repeat("k", 10)+string(rune('a'+i%26))+string(rune('a'+b%26))+string(rune('a'+i/26)), strings.Repeat("v", 100))
		}
		storetest.MustApply(t, s, int64(b), changes...)
	}
	want := storetest.Rows(t, s, nil, nil)
	mustClose(t, s)

	s = mustOpen(t, dir, pebble.MemTableSize(256<<10))
	defer mustClose(t, s)
	storetest.WantOffset(t, s, batches-1)
	if got := storetest.Rows(t, s, nil, nil); !slices.Equal(got, want) {
		t.Fatalf("after reopen %d rows differ from the %d before", len(got), len(want))
	}
}

func TestBuilderGivesEachTableAndPartitionItsOwnStore(t *testing.T) {
	dir := t.TempDir()
	build := pebble.Builder(dir)
	type tp struct {
		table     string
		partition int32
	}
	stores := map[tp]store.Store{}
	for _, k := range []tp{{"clicks", 0}, {"clicks", 1}, {"views", 0}} {
		s, err := build(k.table, k.partition)
		if err != nil {
			t.Fatalf("build %s/%d: %v", k.table, k.partition, err)
		}
		stores[k] = s
		storetest.MustApply(t, s, int64(k.partition)+10, storetest.Set("who", k.table+"/"+string(rune('0'+k.partition))))
	}
	for k, s := range stores {
		storetest.WantGet(t, s, "who", k.table+"/"+string(rune('0'+k.partition)))
		storetest.WantOffset(t, s, int64(k.partition)+10)
		if rows := storetest.Rows(t, s, nil, nil); len(rows) != 1 {
			t.Errorf("%s/%d holds %d rows, want 1", k.table, k.partition, len(rows))
		}
		mustClose(t, s)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*")); len(m) == 0 {
		t.Errorf("no pebble database in %s", dir)
	}

	// With every store closed the builder has closed its database; it must
	// open it again and find the rows.
	s, err := build("views", 0)
	if err != nil {
		t.Fatalf("build views/0 again: %v", err)
	}
	defer mustClose(t, s)
	storetest.WantGet(t, s, "who", "views/0")
}

// The stores of a Builder share one database, under key prefixes that must
// keep them apart: a table whose name starts with another's, a partition
// whose number shares bytes with another's, and a Clear, a range deletion,
// of one of them must leave the others whole.
func TestBuilderStoresKeepTheirRowsApartInTheSharedDatabase(t *testing.T) {
	build := pebble.Builder(t.TempDir())
	names := []struct {
		table     string
		partition int32
	}{{"t", 0}, {"t", 1}, {"t", 256}, {"tt", 0}, {"t.join", 0}}
	var stores []store.Store
	for i, n := range names {
		s, err := build(n.table, n.partition)
		if err != nil {
			t.Fatalf("build %s/%d: %v", n.table, n.partition, err)
		}
		defer mustClose(t, s)
		stores = append(stores, s)
		storetest.MustApply(t, s, int64(i), storetest.Set("k", n.table), storetest.Set("\x00", "low"), storetest.Set("\xff\xff", "high"))
	}
	if err := stores[0].Clear(); err != nil {
		t.Fatalf("clear: %v", err)
	}
	storetest.WantOffset(t, stores[0], -1)
	if rows := storetest.Rows(t, stores[0], nil, nil); len(rows) != 0 {
		t.Fatalf("cleared store holds %d rows", len(rows))
	}
	for i, s := range stores[1:] {
		storetest.WantOffset(t, s, int64(i+1))
		storetest.WantGet(t, s, "k", names[i+1].table)
		if rows := storetest.Rows(t, s, nil, nil); len(rows) != 3 {
			t.Errorf("%s/%d holds %d rows, want 3", names[i+1].table, names[i+1].partition, len(rows))
		}
	}
}

func TestBuilderRejectsTableNamesThatLeaveItsDir(t *testing.T) {
	build := pebble.Builder(t.TempDir())
	for _, table := range []string{"", ".", "..", "a/b", "../escape", `a\b`, "nul\x00"} {
		if s, err := build(table, 0); err == nil {
			s.Close()
			t.Errorf("build(%q, 0) succeeded, want an error", table)
		}
	}
	if s, err := build("t", -1); err == nil {
		s.Close()
		t.Error("build of negative partition succeeded, want an error")
	}
}

func TestOpeningADirAlreadyOpenFailsNamingIt(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	defer mustClose(t, s)

	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	for _, spelling := range []string{dir, dir + "/", dir + "/.", link} {
		second, err := pebble.Open(spelling)
		if err == nil {
			second.Close()
			t.Errorf("second open of %s succeeded, want an error", spelling)
			continue
		}
		if !strings.Contains(err.Error(), spelling) {
			t.Errorf("error %q does not name the directory %s", err, spelling)
		}
	}

	// A builder sharing a cache fails the same way and stays usable.
	base := t.TempDir()
	build := pebble.Builder(base)
	first, err := build("t", 0)
	if err != nil {
		t.Fatalf("build t/0: %v", err)
	}
	if s, err := build("t", 0); err == nil {
		s.Close()
		t.Error("second build of t/0 succeeded, want an error")
	} else if !strings.Contains(err.Error(), filepath.Join(base, "t", "0")) {
		t.Errorf("error %q does not name the directory", err)
	}
	mustClose(t, first)
	again, err := build("t", 0)
	if err != nil {
		t.Fatalf("build t/0 after closing the first: %v", err)
	}
	mustClose(t, again)
}

func TestCloseEndsIteratorsLeftOpen(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	storetest.MustApply(t, s, 0, storetest.Set("a", "1"), storetest.Set("b", "2"))
	it, err := s.Iter(nil, nil)
	if err != nil {
		t.Fatalf("iter: %v", err)
	}
	if !it.Next() {
		t.Fatal("no first row")
	}
	mustClose(t, s)
	if it.Next() {
		t.Fatal("iterator advanced after its store closed")
	}
	if err := it.Err(); !errors.Is(err, pebble.ErrClosed) {
		t.Fatalf("iterator error = %v, want ErrClosed", err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close iterator after store: %v", err)
	}
}

func TestOpenRejectsInvalidOptions(t *testing.T) {
	for name, opt := range map[string]pebble.Opt{
		"negative cache": pebble.CacheSize(-1),
		"zero memtable":  pebble.MemTableSize(0),
		"4 GiB memtable": pebble.MemTableSize(4 << 30),
	} {
		if s, err := pebble.Open(t.TempDir(), opt); err == nil {
			s.Close()
			t.Errorf("%s: open succeeded, want an error", name)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	storetest.BenchApply(b, func(b *testing.B) store.Store { return mustOpen(b, b.TempDir()) })
}

// BenchmarkApplyCountingRows is BenchmarkApply with CountRows: each Apply
// reads its keys first.
func BenchmarkApplyCountingRows(b *testing.B) {
	storetest.BenchApply(b, func(b *testing.B) store.Store { return mustOpen(b, b.TempDir(), pebble.CountRows()) })
}

// BenchmarkApplyRawPebble is BenchmarkApply's baseline: the same batches
// written straight to a Pebble database configured as the store configures
// its own, so the difference is the store's overhead.
func BenchmarkApplyRawPebble(b *testing.B) {
	storetest.BenchApply(b, func(b *testing.B) store.Store {
		db, err := pebbledb.Open(b.TempDir(), &pebbledb.Options{
			DisableWAL:         true,
			MemTableSize:       8 << 20,
			FormatMajorVersion: pebbledb.FormatNewest,
			Logger:             quiet{},
			LoggerAndTracer:    quiet{},
		})
		if err != nil {
			b.Fatalf("open: %v", err)
		}
		return rawPebble{db}
	})
}

// A Builder's stores share a memtable, which a flush after each partition's
// restore would cut into small files spanning every partition; only a store
// with a database of its own offers to flush.
func TestOnlyAStoreWithItsOwnDatabaseFlushesOnRequest(t *testing.T) {
	own := mustOpen(t, t.TempDir())
	defer mustClose(t, own)
	if _, ok := own.(store.Flusher); !ok {
		t.Error("a store from Open does not implement store.Flusher")
	}
	shared, err := pebble.Builder(t.TempDir())("t", 0)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	defer mustClose(t, shared)
	if _, ok := shared.(store.Flusher); ok {
		t.Error("a store from a Builder implements store.Flusher")
	}
}

// Pebble locks a directory, so Builders of one directory in one process, as
// the processors of a group there have, share its database: each opens
// partitions the other does not hold, and none twice.
func TestBuildersOfOneDirectoryShareItsDatabase(t *testing.T) {
	dir := t.TempDir()
	first, second := pebble.Builder(dir), pebble.Builder(dir)
	s0, err := first("t", 0)
	if err != nil {
		t.Fatalf("first builder, t/0: %v", err)
	}
	s1, err := second("t", 1)
	if err != nil {
		t.Fatalf("second builder, t/1: %v", err)
	}
	if s, err := second("t", 0); err == nil {
		s.Close()
		t.Fatal("second builder opened t/0 while the first holds it")
	}
	storetest.MustApply(t, s0, 5, storetest.Set("k", "zero"))
	storetest.MustApply(t, s1, 7, storetest.Set("k", "one"))
	mustClose(t, s0)
	mustClose(t, s1)

	s0, err = second("t", 0)
	if err != nil {
		t.Fatalf("second builder, t/0 after the first closed it: %v", err)
	}
	defer mustClose(t, s0)
	storetest.WantGet(t, s0, "k", "zero")
	storetest.WantOffset(t, s0, 5)
}

// BenchmarkBulkLoad is a bulk load of 100,000 rows into an empty store.
func BenchmarkBulkLoad(b *testing.B) {
	storetest.BenchLoad(b, func(b *testing.B) store.Store { return mustOpen(b, b.TempDir()) })
}

// BenchmarkApplyOfALoad is BenchmarkBulkLoad's changes written through Apply
// instead, for comparison.
func BenchmarkApplyOfALoad(b *testing.B) {
	storetest.BenchLoad(b, func(b *testing.B) store.Store { return applyOnly{mustOpen(b, b.TempDir())} })
}

// applyOnly hides a store's BulkLoad.
type applyOnly struct{ store.Store }

func TestApplyRangesDeletesTheRowsOfItsRangesBeforeItsChanges(t *testing.T) {
	for _, counting := range []bool{false, true} {
		var opts []pebble.Opt
		if counting {
			opts = append(opts, pebble.CountRows())
		}
		st, err := pebble.Open(t.TempDir(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		set := func(k, v string) store.Change { return store.Change{Key: []byte(k), Value: []byte(v)} }
		if err := st.Apply([]store.Change{set("a", "1"), set("b", "1"), set("c", "1"), set("d", "1")}, 1); err != nil {
			t.Fatal(err)
		}
		rd := st.(store.RangeDeleter)
		if err := rd.ApplyRanges([]store.Change{set("b", "2"), set("e", "1")}, []store.Range{{Lo: []byte("a"), Hi: []byte("d")}}, 2); err != nil {
			t.Fatal(err)
		}
		var got []string
		it, err := st.Iter(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			got = append(got, string(it.Key())+"="+string(it.Value()))
		}
		if err := errors.Join(it.Err(), it.Close()); err != nil {
			t.Fatal(err)
		}
		if want := []string{"b=2", "d=1", "e=1"}; !slices.Equal(got, want) {
			t.Errorf("counting %v: rows %q, want %q", counting, got, want)
		}
		if off, err := st.Offset(); err != nil || off != 2 {
			t.Errorf("counting %v: checkpoint %d, %v, want 2", counting, off, err)
		}
		if n, ok := st.(store.RowCounter).Rows(); counting && (!ok || n != 3) {
			t.Errorf("rows counted %d, %v, want 3", n, ok)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
