package sluice

import (
	"context"
	"slices"
	"testing"

	"github.com/sluice-io/sluice/codec"
)

func TestEngineRowChangedByTwoBatchesBeforeTheyAreAppliedReachesTheStoreOnceWithItsLatestValue(t *testing.T) {
	g := DefineGroup[string]("twice")
	Persist(g, codec.String())
	Input(g, "in", codec.String(), setOrDelete)
	e, st, _ := newTestEngine(t, g)
	batches := [][]string{{"a", "1", "b", "1"}, {"a", "2", "c", "1"}, {"b", "", "a", "3"}}
	for _, b := range batches {
		if _, err := e.process(context.Background(), recs(b...)); err != nil {
			t.Fatal(err)
		}
		if len(e.endBatch()) != 2 {
			t.Fatalf("batch %q: want a changelog record per key it changed", b)
		}
	}
	if err := e.applied(6); err != nil {
		t.Fatal(err)
	}
	if len(st.changes) != 1 {
		t.Fatalf("Apply calls %v, want one", st.changes)
	}
	var got []string
	for _, c := range st.changes[0] {
		got = append(got, string(c.Key)+":"+string(c.Value))
	}
	if !slices.Equal(got, []string{"a:3", "b:", "c:1"}) {
		t.Errorf("applied %q, want each row once with its latest value (b deleted)", got)
	}
	if _, err := st.Get([]byte("b")); err == nil {
		t.Error("row b, deleted by the last batch, is in the store")
	}
	if v, _ := rowOf(t, e, "a"); v != "3" {
		t.Errorf("row a = %q, want 3", v)
	}
}
