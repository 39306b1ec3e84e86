package sluice

// Tests of the partition engine driven as a task pipelines its batches: the
// next batch is processed while the one before is written and not yet
// applied (endBatch, process, applied, endBatch, applied).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// tally counts the records of each key in its row (decoded anew on every
// read: a map row) and fails a record whose value is "fail".
func tally() *Group[map[string]int] {
	g := DefineGroup[map[string]int]("tally")
	Persist(g, codec.JSON[map[string]int]())
	Input(g, "in", codec.String(), func(ctx *Context[map[string]int], v string) error {
		if v == "fail" {
			return errHandler
		}
		m, _ := ctx.Value()
		if m == nil {
			m = make(map[string]int)
		}
		m["n"]++
		ctx.SetValue(m)
		return nil
	})
	return g
}

// storedCount returns the count the store holds for key, 0 if none.
func storedCount(t *testing.T, st *applyLog, key string) int {
	t.Helper()
	raw, err := st.Get([]byte(key))
	if err != nil {
		return 0
	}
	m, err := codec.JSON[map[string]int]().Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m["n"]
}

func TestEngineNextBatchReadsThePendingValueOfTheBatchInFlight(t *testing.T) {
	// A cache of one row: the pending row is evicted from the cache by
	// the next batch's rows and must still be what it reads.
	e, st, _ := newTestEngine(t, tally(), CacheRows(1))
	ctx := context.Background()
	if _, err := e.process(ctx, recs("a", "x", "b", "x", "a", "x")); err != nil {
		t.Fatal(err)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{`a:{"n":2}`, `b:{"n":1}`}) {
		t.Fatalf("first changelog = %q", got)
	}
	// The first batch is in flight: the second reads and changes its rows.
	if _, err := e.process(ctx, recs("c", "x", "a", "x", "b", "x", "a", "x")); err != nil {
		t.Fatal(err)
	}
	if n := storedCount(t, st, "a"); n != 0 {
		t.Fatalf("store holds a=%d before the first batch was acknowledged", n)
	}
	// The first batch is acknowledged while the second is in hand: the
	// store gets the first batch's rows alone.
	if err := e.applied(2); err != nil {
		t.Fatal(err)
	}
	if a, b, c := storedCount(t, st, "a"), storedCount(t, st, "b"), storedCount(t, st, "c"); a != 2 || b != 1 || c != 0 {
		t.Fatalf("store after the first batch: a=%d b=%d c=%d, want 2 1 0", a, b, c)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{`c:{"n":1}`, `a:{"n":4}`, `b:{"n":2}`}) {
		t.Fatalf("second changelog = %q, want the counts on top of the first batch's", got)
	}
	if err := e.applied(5); err != nil {
		t.Fatal(err)
	}
	if a, b, c := storedCount(t, st, "a"), storedCount(t, st, "b"), storedCount(t, st, "c"); a != 4 || b != 2 || c != 1 {
		t.Errorf("store after both batches: a=%d b=%d c=%d, want 4 2 1", a, b, c)
	}
	if !slices.Equal(st.offsets, []int64{2, 5}) {
		t.Errorf("store checkpoints %v, want 2 then 5", st.offsets)
	}
}

func TestEngineFailureInTheNextBatchLeavesTheBatchInFlightWhole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   ProcessorOpt
		done  int // records of the second batch kept
		final int // a's count once both batches are applied
	}{
		{"fail", OnError(Fail), 1, 3},
		{"skip", OnError(Skip), 3, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, st, _ := newTestEngine(t, tally(), tc.opt)
			ctx := context.Background()
			if _, err := e.process(ctx, recs("a", "x", "a", "x")); err != nil {
				t.Fatal(err)
			}
			e.endBatch()
			done, err := e.process(ctx, recs("a", "x", "a", "fail", "a", "x"))
			if done != tc.done || (err != nil) != (tc.name == "fail") {
				t.Fatalf("second batch: process = %d, %v", done, err)
			}
			// What the task does next: the batch in flight is applied,
			// then what the second kept is written.
			if err := e.applied(1); err != nil {
				t.Fatal(err)
			}
			if n := storedCount(t, st, "a"); n != 2 {
				t.Fatalf("store after the first batch: a=%d, want 2, none of the second", n)
			}
			want := fmt.Sprintf(`a:{"n":%d}`, tc.final)
			if got := values(e.endBatch()); !slices.Equal(got, []string{want}) {
				t.Fatalf("second changelog = %q, want %s", got, want)
			}
			if err := e.applied(2); err != nil {
				t.Fatal(err)
			}
			if n := storedCount(t, st, "a"); n != tc.final {
				t.Errorf("store after both: a=%d, want %d", n, tc.final)
			}
		})
	}
}

func TestEngineAbandonedPipelineLeavesTheStoreAtTheLastAppliedBatch(t *testing.T) {
	e, st, p := newTestEngine(t, tally())
	ctx := context.Background()
	if _, err := e.process(ctx, recs("a", "x")); err != nil {
		t.Fatal(err)
	}
	e.endBatch()
	if err := e.applied(1); err != nil {
		t.Fatal(err)
	}
	// A batch in flight and one in hand when the partition is taken away
	// without them being acknowledged: nothing of either is applied.
	if _, err := e.process(ctx, recs("a", "x", "b", "x")); err != nil {
		t.Fatal(err)
	}
	e.endBatch()
	if _, err := e.process(ctx, recs("a", "x")); err != nil {
		t.Fatal(err)
	}
	if len(st.offsets) != 1 {
		t.Fatalf("store applied %d times, want once", len(st.offsets))
	}
	// The partition's next engine over the same store starts from the
	// last applied batch.
	var m taskMetrics
	m.init(p.metrics, 0, []string{"in"})
	next := newEngine(p.engineConfig(), enginePartition{partition: 0, table: st, metrics: &m})
	if v, _ := rowOf(t, next, "a"); v["n"] != 1 {
		t.Errorf("next owner reads a=%v, want the applied count 1", v)
	}
	if _, ok := rowOf(t, next, "b"); ok {
		t.Error("next owner reads b, which no applied batch wrote")
	}
}

func TestEngineReusedChangelogRecordsStayWholeUntilTheStoreIsUpdated(t *testing.T) {
	p, err := NewProcessor(tally(), Storage(memory.Builder()))
	if err != nil {
		t.Fatal(err)
	}
	st := &applyLog{Store: memory.New()}
	var m taskMetrics
	m.init(p.metrics, 0, tally().inputTopics())
	e := newEngine(p.engineConfig(), enginePartition{partition: 0, table: st, metrics: &m, reuseChangelog: true})
	ctx := context.Background()
	// Two batches written before the store is updated, as in one
	// transaction: the second's records must not overwrite the first's.
	batch := func(keys ...string) []string {
		t.Helper()
		var in []string
		for _, k := range keys {
			in = append(in, k, "x")
		}
		if _, err := e.process(ctx, recs(in...)); err != nil {
			t.Fatal(err)
		}
		return values(slices.Clone(e.endBatch()))
	}
	one := batch("a", "b", "c")
	oneRecs := slices.Clone(e.clOut)
	two := batch("d", "e")
	if got := values(oneRecs); !slices.Equal(got, one) {
		t.Fatalf("first batch's records after the second was written = %q, want %q", got, one)
	}
	if !slices.Equal(two, []string{`d:{"n":1}`, `e:{"n":1}`}) {
		t.Fatalf("second changelog = %q", two)
	}
	if err := e.applied(5); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if n := storedCount(t, st, k); n != 1 {
			t.Fatalf("store holds %s=%d, want 1", k, n)
		}
	}
	// Once applied, the next batch's records are whole too.
	if got := batch("a", "e", "f"); !slices.Equal(got, []string{`a:{"n":2}`, `e:{"n":2}`, `f:{"n":1}`}) {
		t.Fatalf("third changelog = %q", got)
	}
	if err := e.applied(8); err != nil {
		t.Fatal(err)
	}
	if a, f := storedCount(t, st, "a"), storedCount(t, st, "f"); a != 2 || f != 1 {
		t.Fatalf("store after the third batch: a=%d f=%d, want 2 1", a, f)
	}
}

func TestChangelogSlabsSharedByTasksHoldNoRecordInFlight(t *testing.T) {
	p, err := NewProcessor(tally(), Storage(memory.Builder()))
	if err != nil {
		t.Fatal(err)
	}
	newPart := func(partition int32) (*engine[map[string]int], *applyLog) {
		st := &applyLog{Store: memory.New()}
		var m taskMetrics
		m.init(p.metrics, partition, tally().inputTopics())
		return newEngine(p.engineConfig(), enginePartition{partition: partition, table: st, metrics: &m, reuseChangelog: true}), st
	}
	a, aStore := newPart(0)
	b, _ := newPart(1)
	ctx := context.Background()
	// Batches larger than the slabs an engine keeps, by records and by
	// the bytes of their keys, so that their slabs go back to the ones
	// the tasks share once acknowledged.
	n := changelogSlabKeep + 50
	pad := strings.Repeat("k", changelogKeysKeep/changelogSlabKeep+1)
	batch := func(e *engine[map[string]int], prefix string) []*kgo.Record {
		t.Helper()
		var in []string
		for i := range n {
			in = append(in, fmt.Sprintf("%s%s%04d", prefix, pad, i), "x")
		}
		if _, err := e.process(ctx, recs(in...)); err != nil {
			t.Fatal(err)
		}
		clear(e.effects())
		return slices.Clone(e.endBatch())
	}
	inFlight := batch(a, "a")
	want := values(inFlight)
	// b's batches are acknowledged and applied, one after the other, and
	// give their slabs back, while a's records are still with the client.
	for round := range 4 {
		batch(b, fmt.Sprintf("b%d", round))
		b.changelogAcked()
		if err := b.applied(int64(round)); err != nil {
			t.Fatal(err)
		}
	}
	if got := values(inFlight); !slices.Equal(got, want) {
		t.Fatalf("a's changelog records in flight changed while b reused the shared slabs")
	}
	a.changelogAcked()
	if err := a.applied(1); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, n - 1} {
		k := fmt.Sprintf("a%s%04d", pad, i)
		if got := storedCount(t, aStore, k); got != 1 {
			t.Fatalf("store of a holds %s=%d, want 1", k, got)
		}
	}
	// The next batch, on a slab a or b gave back, is whole.
	next := batch(a, "a")
	for i, r := range next {
		if want := fmt.Sprintf(`a%s%04d:{"n":2}`, pad, i); values([]*kgo.Record{r})[0] != want {
			t.Fatalf("record %d of the next batch = %q, want %q", i, values([]*kgo.Record{r})[0], want)
		}
	}
}
