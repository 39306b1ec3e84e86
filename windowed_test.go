package sluice

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/codec"
)

// countOf folds records of any type into a count.
func countOf[M any]() Aggregator[M, int64] {
	return Aggregator[M, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ M, _ Point) int64 { return n + 1 },
		Codec: codec.Int64(),
	}
}

func ignoreResult(*Context[string], WindowResult[int64]) error { return nil }

func TestAggregateRefusesWhatCannotWorkWithTheReason(t *testing.T) {
	g := DefineGroup[string]("w")
	Input(g, "in", codec.String(), func(*Context[string], string) error { return nil })
	tumbling := Tumbling(time.Second)
	Aggregate(g, "ok", tumbling, countOf[string](), ignoreResult)
	Aggregate(g, "ok", tumbling, countOf[string](), ignoreResult)
	Aggregate(g, "", tumbling, countOf[string](), ignoreResult)
	Aggregate(g, "a\x00b", tumbling, countOf[string](), ignoreResult)
	Aggregate(g, "no-size", Tumbling(0), countOf[string](), ignoreResult)
	Aggregate(g, "no-codec", tumbling, Aggregator[string, int64]{Init: func() int64 { return 0 }, Add: countOf[string]().Add}, ignoreResult)
	Aggregate(g, "no-handler", tumbling, countOf[string](), nil)
	Aggregate(g, "sessions", Sessions(time.Second), countOf[string](), ignoreResult)
	other := DefineGroup[string]("other")
	WindowedInput(g, "theirs", codec.String(), Aggregate(other, "x", tumbling, countOf[string](), ignoreResult))
	err := g.Validate()
	if err == nil {
		t.Fatal("the group validated")
	}
	for _, want := range []string{
		`window "ok": the group already has a windowed aggregation by that name`,
		`window "": name is empty`,
		`name holds a zero byte`,
		`window "no-size": tumbling windows: size must be positive`,
		`window "no-codec": the aggregator needs Init, Add and Codec`,
		`window "no-handler": handler is nil`,
		`window "sessions": session windows need the aggregator's Merge`,
		`windowed input theirs: window "x" belongs to another group`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
}

func TestGroupWithWindowsKeepsATableWithoutPersist(t *testing.T) {
	g := DefineGroup[string]("w")
	a := Aggregate(g, "counts", Tumbling(time.Second), countOf[string](), ignoreResult)
	WindowedInput(g, "in", codec.String(), a)
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if !g.Persisted() {
		t.Error("a group with windows does not keep a table")
	}
	if kind, ok := g.usesTopic(g.TableTopic()); !ok || kind != "table" {
		t.Errorf("the table topic is not the group's: %q", kind)
	}
}

func TestHoppingWindowsOfATimeAreEveryWindowThatHoldsIt(t *testing.T) {
	for _, tc := range []struct {
		w    Windows
		at   int64
		want []span
	}{
		{Tumbling(10), 0, []span{{0, 10}}},
		{Tumbling(10), 10, []span{{10, 20}}},
		{Tumbling(10), -1, []span{{-10, 0}}},
		{Hopping(10, 5), 7, []span{{0, 10}, {5, 15}}},
		{Hopping(10, 5), 10, []span{{5, 15}, {10, 20}}},
		{Hopping(10, 4), 9, []span{{0, 10}, {4, 14}, {8, 18}}},
		{Hopping(10, 4), -3, []span{{-12, -2}, {-8, 2}, {-4, 6}}},
	} {
		got := tc.w.windowsAt(tc.at, nil)
		if len(got) != len(tc.want) {
			t.Errorf("%v at %d: %v, want %v", tc.w, tc.at, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%v at %d: %v, want %v", tc.w, tc.at, got, tc.want)
				break
			}
		}
	}
}

// addThenFail adds each record to a, then fails the records whose value is
// "fail", so that the policy undoes their adds.
func addThenFail(a *Windowed[string, int64]) Handler[string, string] {
	return func(ctx *Context[string], v string) error {
		if err := a.Add(ctx, v); err != nil {
			return err
		}
		if v == "fail" {
			return errHandler
		}
		return nil
	}
}

func TestOpenWindowsCountLeavesOutThoseOfAFailedRecordAndTheClosed(t *testing.T) {
	g := DefineGroup[string]("w")
	a := Aggregate(g, "counts", Tumbling(10*time.Second), countOf[string](), ignoreResult)
	Input(g, "in", codec.String(), addThenFail(a))
	e, _, _ := newTestEngine(t, g, OnError(Skip))
	mustProcess(t, e, at(1, "a", ""), at(2, "b", ""), at(3, "c", "fail"), at(4, "a", ""))
	commit(t, e)
	if n := e.m.openWindows.Load(); n != 2 {
		t.Fatalf("%d open windows, want 2: a's and b's", n)
	}
	mustProcess(t, e, at(12, "c", ""))
	commit(t, e)
	if n := e.m.openWindows.Load(); n != 1 {
		t.Fatalf("%d open windows once [0,10) closed, want 1: c's [10,20)", n)
	}
	// A new engine on the same store counts them anew.
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: e.st, metrics: e.m})
	if err := e2.loadTimers(); err != nil {
		t.Fatal(err)
	}
	if n := e2.win.open; n != 1 {
		t.Errorf("a new engine counts %d open windows, want 1", n)
	}
}

// TestAWindowMadeAndClosedInOneBatchWritesNothingToTheChangelog closes,
// in one batch, windows of earlier batches and a window the batch made:
// only the former get a tombstone, and a new engine on the store neither
// hands out the closed windows' results again nor finds their rows.
func TestAWindowMadeAndClosedInOneBatchWritesNothingToTheChangelog(t *testing.T) {
	g := DefineGroup[string]("w")
	out := Output(g, "out", codec.String())
	a := Aggregate(g, "counts", Tumbling(10*time.Second), countOf[string](), func(ctx *Context[string], r WindowResult[int64]) error {
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s %d", r.Key, r.Value))
	})
	WindowedInput(g, "in", codec.String(), a)
	e, st, _ := newTestEngine(t, g)
	mustProcess(t, e, at(1, "a", ""), at(2, "b", ""))
	commit(t, e)
	wantEmits(t, mustProcess(t, e, at(3, "c", ""), at(4, "a", ""), at(12, "d", "")), "a 2", "b 1", "c 1")
	recs := e.endBatch()
	if err := e.applied(2); err != nil {
		t.Fatal(err)
	}
	var tombstones, values []string
	for _, r := range recs {
		_, key, w, ok := parseWindowRowKey(string(r.Key))
		if !ok {
			continue
		}
		row := fmt.Sprintf("%s %d", key, w.End.Unix())
		if r.Value == nil {
			tombstones = append(tombstones, row)
		} else {
			values = append(values, row)
		}
	}
	slices.Sort(tombstones)
	if got := fmt.Sprint(tombstones, values); got != "[a 10 b 10] [d 20]" {
		t.Errorf("the batch wrote the window rows %s (tombstones, values), want [a 10 b 10] [d 20]", got)
	}
	lo, hi := aggRange("counts")
	it, err := st.Iter(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for it.Next() {
		_, key, w, _ := parseWindowRowKey(string(it.Key()))
		stored = append(stored, fmt.Sprintf("%s %d", key, w.End.Unix()))
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(stored); got != "[d 20]" {
		t.Errorf("the store holds the window rows %s, want [d 20]", got)
	}
	// A new engine on the same store closes [10,20) alone.
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: e.st, metrics: e.m})
	wantEmits(t, mustProcess(t, e2, at(25, "e", "")), "d 1")
}

// TestAnUpdateHandlerThatAddsAgainLeavesTheRecordsOtherWindowsItsValue
// folds a record into two hopping windows of an aggregation whose handler
// of updates adds another value, once, during the first window's update:
// the record's second window still gets the record's own value.
func TestAnUpdateHandlerThatAddsAgainLeavesTheRecordsOtherWindowsItsValue(t *testing.T) {
	g := DefineGroup[string]("w")
	out := Output(g, "out", codec.String())
	var a *Windowed[string, int64]
	added := false
	a = Aggregate(g, "sums", Hopping(10*time.Second, 5*time.Second).EmitUpdates(), Sum(func(v string) int64 {
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}), func(ctx *Context[string], r WindowResult[int64]) error {
		if !added {
			added = true
			if err := a.AddAt(ctx, "100", time.Unix(22, 0)); err != nil {
				return err
			}
		}
		return out.Emit(ctx, r.Key, fmt.Sprintf("%d %d", r.Window.Start.Unix(), r.Value))
	})
	WindowedInput(g, "in", codec.String(), a)
	e, _, _ := newTestEngine(t, g)
	wantEmits(t, mustProcess(t, e, at(7, "a", "1")), "15 100", "20 100", "0 1", "5 1")
}
