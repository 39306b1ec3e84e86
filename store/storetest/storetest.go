// Package storetest holds the conformance tests and benchmarks that every
// store.Store implementation must pass, so that each implementation is held
// to the same contract by the same code.
//
// An implementation's test file calls Run with a function that opens a new,
// empty store:
//
//	func TestStoreConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
//	}
//
// Run closes every store it opens; open must not register its own Close.
// Stores that implement store.BulkLoader are held to its contract too; its
// tests feed a loader about 4 MB of changes, so a store that writes a chunk
// at about 1 MiB writes several.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/store"
)

// Run runs the conformance tests against stores made by open, each as a
// subtest with a store of its own.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetOfMissingKeyReturnsErrNotFound", testGetMissing},
		{"OffsetIsMinusOneBeforeFirstApply", testOffsetInitial},
		{"ApplyWritesSetsDeletesAndCheckpointTogether", testApply},
		{"LaterChangeToSameKeyWinsWithinOneApply", testApplyOrder},
		{"EmptyValueIsARowNotATombstone", testEmptyValue},
		{"ApplyOfNoChangesStillMovesCheckpoint", testApplyEmpty},
		{"GetReturnsCopyIndependentOfStore", testGetCopy},
		{"ApplyCopiesChangesItIsGiven", testApplyCopies},
		{"IterWalksRowsInAscendingByteOrderWithinBounds", testIterBounds},
		{"KeysWithZeroAndFFBytesSortAndRoundTrip", testBinaryKeys},
		{"IterIsSnapshotUnaffectedByLaterApply", testIterSnapshot},
		{"ClearRemovesRowsAndCheckpointAndStoreStaysUsable", testClear},
		{"ConcurrentReadersSeeEachApplyWholeOrNotAtAll", testConcurrent},
		{"RowCountFollowsSetsDeletesRepeatsAndClear", testRowCount},
		{"BulkLoadLeavesTheRowsApplyWouldAndTheStoreTakesApplyAfter", testBulkLoad},
		{"BulkLoadShowsWholeChunksAtTheirCheckpoints", testBulkLoadChunksAreWhole},
		{"BulkLoadNeedsAnEmptyStoreAndExcludesOtherWrites", testBulkLoadNeedsAnEmptyStore},
		{"BulkLoadOfNothingLeavesNoCheckpoint", testBulkLoadOfNothing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
	// This one closes its store itself.
	t.Run("ClosedStoreRejectsCalls", func(t *testing.T) { testClosed(t, open(t)) })
	t.Run("ClosingAStoreDropsWhatItsLoaderHolds", func(t *testing.T) {
		s := open(t)
		// The test closes s; this is for when it fails before.
		t.Cleanup(func() { _ = s.Close() })
		if _, ok := s.(store.BulkLoader); !ok {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			t.Skip("the store is no store.BulkLoader")
		}
		testClosedStoreDropsItsLoader(t, s)
	})
}

func testGetMissing(t *testing.T, s store.Store) {
	WantMissing(t, s, "absent")
	WantMissing(t, s, "")
	MustApply(t, s, 0, Set("present", "v"))
	WantMissing(t, s, "absent")
	WantMissing(t, s, "presen")
	WantMissing(t, s, "present\x00")
}

func testOffsetInitial(t *testing.T, s store.Store) {
	WantOffset(t, s, -1)
}

func testApply(t *testing.T, s store.Store) {
	MustApply(t, s, 10, Set("a", "1"), Set("b", "2"), Set("c", "3"))
	WantOffset(t, s, 10)
	MustApply(t, s, 11, Del("b"), Set("c", "33"), Set("d", "4"), Del("never-existed"))
	WantOffset(t, s, 11)
	WantGet(t, s, "a", "1")
	WantMissing(t, s, "b")
	WantGet(t, s, "c", "33")
	WantGet(t, s, "d", "4")
	want := []Row{{"a", "1"}, {"c", "33"}, {"d", "4"}}
	if got := Rows(t, s, nil, nil); !slices.Equal(got, want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
}

func testApplyOrder(t *testing.T, s store.Store) {
	MustApply(t, s, 1, Set("k", "first"), Set("k", "second"), Set("gone", "x"), Del("gone"))
	WantGet(t, s, "k", "second")
	WantMissing(t, s, "gone")
	MustApply(t, s, 2, Del("k"), Set("k", "again"))
	WantGet(t, s, "k", "again")

	// Many keys out of order, each changed in three rounds: the last
	// round's change of a key is what the store holds.
	var changes []store.Change
	for round := range 3 {
		for i := 9; i >= 0; i-- {
			key := fmt.Sprintf("key-%d", i)
			if round == 2 && i%3 == 0 {
				changes = append(changes, Del(key))
			} else {
				changes = append(changes, Set(key, fmt.Sprintf("%d-%d", i, round)))
			}
		}
	}
	MustApply(t, s, 3, changes...)
	for i := range 10 {
		if key := fmt.Sprintf("key-%d", i); i%3 == 0 {
			WantMissing(t, s, key)
		} else {
			WantGet(t, s, key, fmt.Sprintf("%d-2", i))
		}
	}
	if c, ok := s.(store.RowCounter); ok {
		if _, counting := c.Rows(); counting {
			WantRows(t, s, 7) // k and six of the ten
		}
	}
}

func testEmptyValue(t *testing.T, s store.Store) {
	MustApply(t, s, 0, store.Change{Key: []byte("k"), Value: []byte{}})
	got, err := s.Get([]byte("k"))
	if err != nil {
		t.Fatalf("get of empty value: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Fatalf("get of empty value = %#v, want non-nil empty slice", got)
	}
	if rows := Rows(t, s, nil, nil); !slices.Equal(rows, []Row{{"k", ""}}) {
		t.Fatalf("rows = %q, want one empty row", rows)
	}
}

func testApplyEmpty(t *testing.T, s store.Store) {
	MustApply(t, s, 7)
	WantOffset(t, s, 7)
	if rows := Rows(t, s, nil, nil); len(rows) != 0 {
		t.Fatalf("rows = %q, want none", rows)
	}
}

func testGetCopy(t *testing.T, s store.Store) {
	MustApply(t, s, 0, Set("k", "value"))
	got, err := s.Get([]byte("k"))
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	copy(got, "XXXXX")
	WantGet(t, s, "k", "value")
}

func testApplyCopies(t *testing.T, s store.Store) {
	key, value := []byte("key"), []byte("value")
	MustApply(t, s, 0, store.Change{Key: key, Value: value})
	copy(key, "KEY")
	copy(value, "VALUE")
	WantGet(t, s, "key", "value")
	WantMissing(t, s, "KEY")
}

func testIterBounds(t *testing.T, s store.Store) {
	MustApply(t, s, 0, Set("d", "4"), Set("b", "2"), Set("a", "1"), Set("c", "3"), Set("e", "5"))
	all := []Row{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}}
	for _, tc := range []struct {
		name   string
		lo, hi []byte
		want   []Row
	}{
		{"unbounded", nil, nil, all},
		{"empty lo is unbounded below", []byte{}, nil, all},
		{"lo only", []byte("c"), nil, all[2:]},
		{"lo between keys", []byte("bb"), nil, all[2:]},
		{"hi only, exclusive", nil, []byte("c"), all[:2]},
		{"hi between keys", nil, []byte("cc"), all[:3]},
		{"both", []byte("b"), []byte("d"), all[1:3]},
		{"hi past last", []byte("d"), []byte("z"), all[3:]},
		{"lo past last", []byte("f"), nil, nil},
		{"hi before first", nil, []byte("a"), nil},
		{"lo equals hi", []byte("b"), []byte("b"), nil},
		{"lo after hi", []byte("d"), []byte("b"), nil},
		{"empty hi is an empty range", nil, []byte{}, nil},
	} {
		if got := Rows(t, s, tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("%s: rows [%q, %q) = %q, want %q", tc.name, tc.lo, tc.hi, got, tc.want)
		}
	}

	// An iterator that was never advanced or has run out stays quiet.
	it, err := s.Iter(nil, nil)
	if err != nil {
		t.Fatalf("iter: %v", err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close unused iterator: %v", err)
	}
}

func testBinaryKeys(t *testing.T, s store.Store) {
	keys := []string{
		"", "\x00", "\x00\x00", "\x00\x01", "\x01", "\x02", "a", "a\x00", "a\xff",
		"\xfe", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff", "offset", "\x00offset",
	}
	var changes []store.Change
	for i, k := range keys {
		changes = append(changes, Set(k, fmt.Sprint(i)))
	}
	MustApply(t, s, 3, changes...)
	// Writing rows must never touch the checkpoint, whatever the keys.
	WantOffset(t, s, 3)

	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	value := map[string]string{}
	for i, k := range keys {
		value[k] = fmt.Sprint(i)
		WantGet(t, s, k, fmt.Sprint(i))
	}
	rowsOf := func(ks []string) []Row {
		var rows []Row
		for _, k := range ks {
			rows = append(rows, Row{k, value[k]})
		}
		return rows
	}
	between := func(lo, hi string) []string {
		var ks []string
		for _, k := range sorted {
			if k >= lo && k < hi {
				ks = append(ks, k)
			}
		}
		return ks
	}

	if got, want := Rows(t, s, nil, nil), rowsOf(sorted); !slices.Equal(got, want) {
		t.Errorf("all rows = %q, want %q", got, want)
	}
	if got, want := Rows(t, s, nil, []byte{0}), rowsOf([]string{""}); !slices.Equal(got, want) {
		t.Errorf("rows below 0x00 = %q, want %q", got, want)
	}
	if got, want := Rows(t, s, []byte{0xff}, nil), rowsOf([]string{"\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"}); !slices.Equal(got, want) {
		t.Errorf("rows from 0xff = %q, want %q", got, want)
	}
	if got, want := Rows(t, s, []byte{0}, []byte{0xff, 0xff}), rowsOf(between("\x00", "\xff\xff")); !slices.Equal(got, want) {
		t.Errorf("rows [0x00, 0xffff) = %q, want %q", got, want)
	}
	if got, want := Rows(t, s, []byte{0x01}, []byte{0x02}), rowsOf([]string{"\x01"}); !slices.Equal(got, want) {
		t.Errorf("rows [0x01, 0x02) = %q, want %q", got, want)
	}

	MustApply(t, s, 4, Del(""), Del("\xff\xff\xff"), Del("\x00"))
	WantMissing(t, s, "")
	WantMissing(t, s, "\xff\xff\xff")
	WantMissing(t, s, "\x00")
	WantGet(t, s, "\x00\x00", value["\x00\x00"])
	WantOffset(t, s, 4)
}

func testIterSnapshot(t *testing.T, s store.Store) {
	MustApply(t, s, 0, Set("a", "1"), Set("b", "2"), Set("c", "3"))
	it, err := s.Iter(nil, nil)
	if err != nil {
		t.Fatalf("iter: %v", err)
	}
	defer it.Close()
	if !it.Next() || string(it.Key()) != "a" {
		t.Fatalf("first row = %q, want a", it.Key())
	}
	MustApply(t, s, 1, Set("a", "changed"), Del("b"), Set("bb", "new"), Set("c", "changed"))
	var got []Row
	for it.Next() {
		got = append(got, Row{string(it.Key()), string(it.Value())})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate: %v", err)
	}
	if want := []Row{{"b", "2"}, {"c", "3"}}; !slices.Equal(got, want) {
		t.Fatalf("rows after concurrent apply = %q, want snapshot %q", got, want)
	}
}

func testClear(t *testing.T, s store.Store) {
	MustApply(t, s, 5, Set("a", "1"), Set("b", "2"), Set("\xff", "3"), Set("", "4"))
	if err := s.Clear(); err != nil {
		t.Fatalf("clear: %v", err)
	}
	WantOffset(t, s, -1)
	WantMissing(t, s, "a")
	WantMissing(t, s, "")
	if rows := Rows(t, s, nil, nil); len(rows) != 0 {
		t.Fatalf("rows after clear = %q, want none", rows)
	}
	if err := s.Clear(); err != nil {
		t.Fatalf("clear of empty store: %v", err)
	}

	MustApply(t, s, 0, Set("b", "new"))
	WantOffset(t, s, 0)
	WantGet(t, s, "b", "new")
	if got, want := Rows(t, s, nil, nil), []Row{{"b", "new"}}; !slices.Equal(got, want) {
		t.Fatalf("rows after clear and apply = %q, want %q", got, want)
	}
}

// WantRows fails t unless s counts its rows and holds want of them.
func WantRows(t testing.TB, s store.Store, want int64) {
	t.Helper()
	c, ok := s.(store.RowCounter)
	if !ok {
		t.Fatalf("store %T is no store.RowCounter", s)
	}
	if n, ok := c.Rows(); !ok || n != want {
		t.Fatalf("Rows() = %d, %v; want %d, true", n, ok, want)
	}
}

// testRowCount checks the count of a store that counts its rows, and is
// skipped for others.
func testRowCount(t *testing.T, s store.Store) {
	c, ok := s.(store.RowCounter)
	if !ok {
		t.Skip("the store does not count its rows")
	}
	if _, ok := c.Rows(); !ok {
		t.Skip("the store does not count its rows")
	}
	WantRows(t, s, 0)
	MustApply(t, s, 0, Set("a", "1"), Set("b", "2"), Set("c", ""))
	WantRows(t, s, 3)
	// Overwrites, deletes of rows and of keys without one, and keys
	// changed twice in one Apply.
	MustApply(t, s, 1, Set("a", "10"), Del("b"), Del("nothing"), Set("d", "4"), Del("d"), Set("e", "5"), Del("e"), Set("e", "6"))
	WantRows(t, s, 3) // a, c, e
	MustApply(t, s, 2)
	WantRows(t, s, 3)
	if err := s.Clear(); err != nil {
		t.Fatalf("clear: %v", err)
	}
	WantRows(t, s, 0)
	MustApply(t, s, 3, Set("x", "1"))
	WantRows(t, s, 1)
}

// testConcurrent has one writer rewrite every row to the same version in
// each Apply while readers check that they never see two versions at once.
func testConcurrent(t *testing.T, s store.Store) {
	const (
		rows    = 50
		applies = 200
		readers = 3
	)
	key := func(i int) []byte { return fmt.Appendf(nil, "row-%03d", i) }
	version := func(v int) []byte { return fmt.Appendf(nil, "version-%06d", v) }

	done := make(chan struct{})
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			lastOffset := int64(-1)
			for {
				select {
				case <-done:
					return
				default:
				}
				it, err := s.Iter(nil, nil)
				if err != nil {
					t.Errorf("iter: %v", err)
					return
				}
				var seen [][]byte
				var prev []byte
				for it.Next() {
					if prev != nil && bytes.Compare(prev, it.Key()) >= 0 {
						t.Errorf("keys out of order: %q then %q", prev, it.Key())
					}
					prev = bytes.Clone(it.Key())
					seen = append(seen, bytes.Clone(it.Value()))
				}
				if err := it.Err(); err != nil {
					t.Errorf("iterate: %v", err)
				}
				if err := it.Close(); err != nil {
					t.Errorf("close iterator: %v", err)
				}
				if len(seen) != 0 && len(seen) != rows {
					t.Errorf("snapshot holds %d rows, want 0 or %d", len(seen), rows)
				}
				for _, v := range seen {
					if !bytes.Equal(v, seen[0]) {
						t.Errorf("snapshot mixes %q and %q", seen[0], v)
						break
					}
				}

				if v, err := s.Get(key(rows / 2)); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("get: %v", err)
				} else if err == nil && !bytes.HasPrefix(v, []byte("version-")) {
					t.Errorf("get = %q, want a version", v)
				}

				off, err := s.Offset()
				if err != nil {
					t.Errorf("offset: %v", err)
				} else if off < lastOffset {
					t.Errorf("offset went back from %d to %d", lastOffset, off)
				}
				lastOffset = off
			}
		})
	}

	changes := make([]store.Change, rows)
	for v := range applies {
		for i := range changes {
			changes[i] = store.Change{Key: key(i), Value: version(v)}
		}
		if err := s.Apply(changes, int64(v)); err != nil {
			t.Errorf("apply %d: %v", v, err)
			break
		}
	}
	close(done)
	wg.Wait()
	WantOffset(t, s, applies-1)
	WantGet(t, s, string(key(0)), string(version(applies-1)))
}

func testClosed(t *testing.T, s store.Store) {
	MustApply(t, s, 0, Set("k", "v"))
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := s.Get([]byte("k")); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after close: err = %v, want a closed error", err)
	}
	if err := s.Apply([]store.Change{Set("k", "w")}, 1); err == nil {
		t.Error("apply after close succeeded")
	}
	if _, err := s.Offset(); err == nil {
		t.Error("offset after close succeeded")
	}
	if _, err := s.Iter(nil, nil); err == nil {
		t.Error("iter after close succeeded")
	}
	if err := s.Clear(); err == nil {
		t.Error("clear after close succeeded")
	}
	if err := s.Close(); err == nil {
		t.Error("second close succeeded")
	}
}
