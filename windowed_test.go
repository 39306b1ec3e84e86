package sluice

import (
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
		`window "sessions": session windows are not supported yet`,
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
