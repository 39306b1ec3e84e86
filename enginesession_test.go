package sluice

import (
	"testing"
	"time"

	"github.com/sluice-io/sluice/codec"
)

func TestSessionRetentionCountsFromTheSessionsEnd(t *testing.T) {
	w := Sessions(10 * time.Second).Grace(5 * time.Second)
	if got, want := w.closesAt(100), int64(100+15*time.Second); got != want {
		t.Errorf("a session ending at 100 closes at %d, want %d", got, want)
	}
	if !w.purgedAtClose() {
		t.Error("sessions with the default retention are not purged at close")
	}
	if got, want := w.Retain(time.Minute).purgedAt(100), int64(100+time.Minute); got != want {
		t.Errorf("a session ending at 100 retained a minute is purged at %d, want %d", got, want)
	}
}

// sessionCounts is a group that counts the records of "in" in sessions of
// gap 10s and grace 20s, and fails a record whose value is "fail" after
// adding it.
func sessionCounts() *Group[string] {
	g := DefineGroup[string]("sessions")
	agg := Aggregate(g, "counts", Sessions(10*time.Second).Grace(20*time.Second), Aggregator[string, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ string, _ Point) int64 { return n + 1 },
		Merge: func(a, b int64) int64 { return a + b },
		Codec: codec.Int64(),
	}, ignoreResult)
	Input(g, "in", codec.String(), func(ctx *Context[string], v string) error {
		if err := agg.Add(ctx, v); err != nil {
			return err
		}
		if v == "fail" {
			return errHandler
		}
		return nil
	})
	return g
}

func TestSessionMergeKeepsTheCountOfOpenWindowsAlsoWhenUndone(t *testing.T) {
	e, _, _ := newTestEngine(t, sessionCounts(), OnError(Skip))
	mustProcess(t, e, at(0, "a", "x"), at(15, "a", "x"), at(0, "b", "x"))
	if e.win.open != 3 {
		t.Fatalf("open windows %d, want 3", e.win.open)
	}
	mustProcess(t, e, at(7, "a", "fail")) // would merge a's two sessions
	if e.win.open != 3 {
		t.Fatalf("open windows %d after a failed merge, want 3", e.win.open)
	}
	commit(t, e)
	mustProcess(t, e, at(7, "a", "x"))
	if e.win.open != 2 {
		t.Fatalf("open windows %d after a merge, want 2", e.win.open)
	}
	commit(t, e)
	if err := e.loadWindows(); err != nil {
		t.Fatal(err)
	}
	if e.win.open != 2 {
		t.Fatalf("open windows counted from the store %d, want 2", e.win.open)
	}
}
