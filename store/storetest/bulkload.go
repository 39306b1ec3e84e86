package storetest

// The conformance tests of store.BulkLoader, which Run runs against stores
// that implement it and skips for others.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/store"
)

// bulkLoader returns s as a store.BulkLoader, or skips t.
func bulkLoader(t *testing.T, s store.Store) store.BulkLoader {
	t.Helper()
	bl, ok := s.(store.BulkLoader)
	if !ok {
		t.Skip("the store is no store.BulkLoader")
	}
	return bl
}

// mustBulkLoad starts a load of s and fails t on error.
func mustBulkLoad(t *testing.T, bl store.BulkLoader) store.Loader {
	t.Helper()
	l, err := bl.BulkLoad()
	if err != nil {
		t.Fatalf("bulk load: %v", err)
	}
	return l
}

// loadRounds is the changelog the load tests feed a loader, as Apply calls
// of 500 changes: three rounds over 12,000 keys with values of about 100
// bytes (3.4 MB in all, so that a store whose bound is about 1 MiB writes
// several chunks), in which the second round deletes a fifth of the keys
// the first set, and the third sets some of those again and deletes others,
// with keys changed twice in one Apply and empty values. It returns the
// calls, the offset after each, and the rows after each.
func loadRounds() (calls [][]store.Change, offsets []int64, rows []map[string]string) {
	const keys, perCall = 12000, 500
	model := map[string]string{}
	var call []store.Change
	offset := int64(0)
	add := func(c store.Change) {
		call = append(call, c)
		offset++
		if c.Value == nil {
			delete(model, string(c.Key))
		} else {
			model[string(c.Key)] = string(c.Value)
		}
		if len(call) == perCall {
			calls, offsets, rows = append(calls, call), append(offsets, offset), append(rows, maps.Clone(model))
			call = nil
		}
	}
	key := func(i int) string { return fmt.Sprintf("key-%06d", (i*7919)%keys) }
	value := func(round, i int) string { return fmt.Sprintf("%d-%d-%s", round, i, strings.Repeat("v", 90)) }
	for i := range keys {
		switch {
		case i%97 == 0:
			add(Set(key(i), "")) // an empty value is a row
		case i%89 == 0:
			add(Set(key(i), "overwritten in the same call"))
			add(Set(key(i), value(0, i)))
		default:
			add(Set(key(i), value(0, i)))
		}
	}
	for i := range keys {
		if i%5 == 0 {
			add(Del(key(i)))
		} else {
			add(Set(key(i), value(1, i)))
		}
	}
	for i := range keys {
		switch {
		case i%10 == 0:
			add(Set(key(i), value(2, i)))
		case i%7 == 0:
			add(Del(key(i)))
		case i%3 == 0:
			add(Set(key(i), value(2, i)))
		}
	}
	add(Del("never-existed"))
	if len(call) > 0 {
		calls, offsets, rows = append(calls, call), append(offsets, offset), append(rows, maps.Clone(model))
	}
	// An Apply of no changes still moves the checkpoint.
	calls, offsets, rows = append(calls, nil), append(offsets, offset+10), append(rows, maps.Clone(model))
	return calls, offsets, rows
}

// wantRowsOf fails t unless the rows of s are those of model.
func wantRowsOf(t *testing.T, s store.Store, model map[string]string, when string) {
	t.Helper()
	if d := diffModel(Rows(t, s, nil, nil), model); d != "" {
		t.Fatalf("%s: %s", when, d)
	}
}

// testBulkLoad feeds a loader the rounds and checks that the store ends as
// Apply calls would have left it, and takes Apply calls after the load.
func testBulkLoad(t *testing.T, s store.Store) {
	l := mustBulkLoad(t, bulkLoader(t, s))
	calls, offsets, rows := loadRounds()
	for i, c := range calls {
		if err := l.Apply(c, offsets[i]); err != nil {
			t.Fatalf("loader apply at offset %d: %v", offsets[i], err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close loader: %v", err)
	}
	model := rows[len(rows)-1]
	WantOffset(t, s, offsets[len(offsets)-1])
	wantRowsOf(t, s, model, "after the load")
	WantGet(t, s, fmt.Sprintf("key-%06d", 0), model[fmt.Sprintf("key-%06d", 0)])
	WantMissing(t, s, "never-existed")
	if c, ok := s.(store.RowCounter); ok {
		if _, counts := c.Rows(); counts {
			WantRows(t, s, int64(len(model)))
		}
	}
	if err := l.Close(); err == nil {
		t.Error("second close of a loader succeeded")
	}

	MustApply(t, s, offsets[len(offsets)-1]+1, Set("after", "load"), Del("key-000000"))
	WantGet(t, s, "after", "load")
	WantMissing(t, s, "key-000000")
}

// testBulkLoadChunksAreWhole checks after each Apply of a loader that the
// store shows the rows of its checkpoint, or none before its first chunk.
func testBulkLoadChunksAreWhole(t *testing.T, s store.Store) {
	l := mustBulkLoad(t, bulkLoader(t, s))
	defer func() {
		if err := l.Close(); err != nil {
			t.Errorf("close loader: %v", err)
		}
	}()
	calls, offsets, rows := loadRounds()
	at := map[int64]int{}
	for i, o := range offsets {
		at[o] = i
	}
	chunks := 0
	last := int64(-1)
	for i, c := range calls {
		if err := l.Apply(c, offsets[i]); err != nil {
			t.Fatalf("loader apply at offset %d: %v", offsets[i], err)
		}
		// A loader may write chunks in the background, so the rows are
		// read between two equal checkpoints.
		got, rowsAt := stableRows(t, s)
		if got == last {
			continue
		}
		j, ok := at[got]
		if !ok || j > i {
			t.Fatalf("after the loader took offset %d the checkpoint is %d, not one it was given", offsets[i], got)
		}
		chunks++
		last = got
		if d := diffModel(rowsAt, rows[j]); d != "" {
			t.Fatalf("at checkpoint %d: %s", got, d)
		}
	}
	if chunks == 0 && last >= 0 {
		t.Fatal("no chunk seen yet a checkpoint")
	}
	t.Logf("%d chunks written before Close", chunks)
}

// stableRows returns the checkpoint of s and its rows, read while the
// checkpoint stayed the same.
func stableRows(t *testing.T, s store.Store) (int64, []Row) {
	t.Helper()
	for {
		before, err := s.Offset()
		if err != nil {
			t.Fatalf("offset: %v", err)
		}
		rows := Rows(t, s, nil, nil)
		after, err := s.Offset()
		if err != nil {
			t.Fatalf("offset: %v", err)
		}
		if before == after {
			return before, rows
		}
	}
}

// diffModel describes how rows differ from those of model, or returns "".
func diffModel(rows []Row, model map[string]string) string {
	want := make([]Row, 0, len(model))
	for _, k := range slices.Sorted(maps.Keys(model)) {
		want = append(want, Row{k, model[k]})
	}
	if slices.Equal(rows, want) {
		return ""
	}
	return fmt.Sprintf("%d rows differ from the %d expected", len(rows), len(want))
}

// testBulkLoadNeedsAnEmptyStore checks that only a store without a
// checkpoint can be loaded, that a load excludes Apply, Clear and another
// load, and that a cleared store can be loaded again.
func testBulkLoadNeedsAnEmptyStore(t *testing.T, s store.Store) {
	bl := bulkLoader(t, s)
	MustApply(t, s, 3, Set("a", "1"))
	if l, err := bl.BulkLoad(); err == nil {
		_ = l.Close()
		t.Fatal("bulk load of a store with a checkpoint succeeded")
	}
	if err := s.Clear(); err != nil {
		t.Fatalf("clear: %v", err)
	}
	l := mustBulkLoad(t, bl)
	if second, err := bl.BulkLoad(); err == nil {
		_ = second.Close()
		t.Error("a second bulk load while one is open succeeded")
	}
	if err := s.Apply([]store.Change{Set("x", "y")}, 9); err == nil {
		t.Error("apply while a load is open succeeded")
	}
	if err := s.Clear(); err == nil {
		t.Error("clear while a load is open succeeded")
	}
	if err := l.Apply([]store.Change{Set("b", "2"), Del("a")}, 5); err != nil {
		t.Fatalf("loader apply: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close loader: %v", err)
	}
	WantOffset(t, s, 5)
	WantMissing(t, s, "a")
	WantGet(t, s, "b", "2")
	MustApply(t, s, 6, Set("c", "3"))
	WantGet(t, s, "c", "3")
}

// testBulkLoadOfNothing checks that a loader closed without changes leaves
// the store empty and without a checkpoint.
func testBulkLoadOfNothing(t *testing.T, s store.Store) {
	l := mustBulkLoad(t, bulkLoader(t, s))
	if err := l.Close(); err != nil {
		t.Fatalf("close loader: %v", err)
	}
	WantOffset(t, s, -1)
	if rows := Rows(t, s, nil, nil); len(rows) != 0 {
		t.Fatalf("rows after an empty load = %q, want none", rows)
	}
}

// testClosedStoreDropsItsLoader closes a store with a loader open: the
// loader then fails, and nothing it held was written.
func testClosedStoreDropsItsLoader(t *testing.T, s store.Store) {
	l := mustBulkLoad(t, bulkLoader(t, s))
	if err := l.Apply([]store.Change{Set("a", "1")}, 1); err != nil {
		t.Fatalf("loader apply: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	if err := l.Close(); err == nil {
		t.Error("close of a loader of a closed store that held changes succeeded")
	}
}
