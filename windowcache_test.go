package sluice

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
)

// finalCounts is a group that counts records per key in tumbling windows
// of 10 s and emits "<key> <count>" to out for each window that closes.
func finalCounts() *Group[string] {
	g := DefineGroup[string]("w")
	out := Output(g, "out", codec.String())
	a := Aggregate(g, "counts", Tumbling(10*time.Second), countOf[string](), func(ctx *Context[string], r WindowResult[int64]) error {
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s %d", r.Key, r.Value))
	})
	WindowedInput(g, "in", codec.String(), a)
	return g
}

// TestAClosedWindowsRowsLeaveMemoryOnceTheStoreHoldsTheirDeletion closes
// a window of two keys: their rows stay in memory while their deletion is
// pending, and go once the store holds it, while the open window's row
// stays.
func TestAClosedWindowsRowsLeaveMemoryOnceTheStoreHoldsTheirDeletion(t *testing.T) {
	e, _, _ := newTestEngine(t, finalCounts())
	mustProcess(t, e, at(1, "a", ""), at(2, "b", ""))
	commit(t, e)
	if n := len(e.rows.win.m); n != 2 {
		t.Fatalf("%d window rows in memory, want 2: a's and b's", n)
	}
	wantEmits(t, mustProcess(t, e, at(12, "c", "")), "a 1", "b 1")
	e.endBatch()
	if n := len(e.rows.win.m); n != 3 {
		t.Fatalf("%d window rows in memory before the batch is applied, want 3: a's and b's, deleted, and c's", n)
	}
	if err := e.applied(1); err != nil {
		t.Fatal(err)
	}
	if _, held := e.rows.win.m[spanKey("counts", "c", span{start: int64(10 * time.Second), end: int64(20 * time.Second)})]; !held || len(e.rows.win.m) != 1 {
		t.Errorf("%d window rows in memory once applied, want 1: c's", len(e.rows.win.m))
	}
}

// TestWindowRowsPastCacheRowsAreLetGoOfAndFoundAgainInTheStore folds
// twice as many keys as CacheRows into a window in one batch and once more
// in the next: the rows past CacheRows leave memory once the store holds
// them, and the second fold of each finds its count in the store, so the
// window closes with every key's count.
func TestWindowRowsPastCacheRowsAreLetGoOfAndFoundAgainInTheStore(t *testing.T) {
	const keys = 8
	e, _, _ := newTestEngine(t, finalCounts(), CacheRows(keys/2))
	batch := func(sec int64) []*kgo.Record {
		var rs []*kgo.Record
		for i := range keys {
			rs = append(rs, at(sec, fmt.Sprintf("k%d", i), ""))
		}
		return rs
	}
	for sec := int64(1); sec <= 2; sec++ {
		mustProcess(t, e, batch(sec)...)
		commit(t, e)
		if n := len(e.rows.win.m); n > keys/2 {
			t.Fatalf("%d window rows in memory after batch %d, want at most %d", n, sec, keys/2)
		}
	}
	var want []string
	for i := range keys {
		want = append(want, fmt.Sprintf("k%d 2", i))
	}
	wantEmits(t, mustProcess(t, e, at(12, "x", "")), want...)
}

// TestAWindowMadeAgainAfterAFailedRecordUndidItClosesOnce makes a window
// with a record that fails, then again with the next records of the
// batch, and closes it in the same batch and in the next: each time it
// hands out one final result, of the records that succeeded.
func TestAWindowMadeAgainAfterAFailedRecordUndidItClosesOnce(t *testing.T) {
	for _, commitFirst := range []bool{false, true} {
		g := DefineGroup[string]("w")
		out := Output(g, "out", codec.String())
		a := Aggregate(g, "counts", Tumbling(10*time.Second), countOf[string](), func(ctx *Context[string], r WindowResult[int64]) error {
			return out.Emit(ctx, r.Key, fmt.Sprintf("%s %d", r.Key, r.Value))
		})
		Input(g, "in", codec.String(), addThenFail(a))
		e, _, _ := newTestEngine(t, g, OnError(Skip))
		mustProcess(t, e, at(1, "a", "fail"), at(2, "a", ""), at(3, "a", "fail"), at(4, "a", ""))
		if commitFirst {
			commit(t, e)
		}
		wantEmits(t, mustProcess(t, e, at(12, "b", "")), "a 2")
		commit(t, e)
		if n := e.m.openWindows.Load(); n != 1 {
			t.Errorf("commit first %v: %d open windows, want 1: b's", commitFirst, n)
		}
	}
}
