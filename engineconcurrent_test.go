package sluice

// Tests of the engine's concurrent inputs alone, exactly once: what each
// transaction writes and commits, without a broker.

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
)

// echoing is a group with a concurrent input "in" that emits each value to
// "out"; a value with a channel in holds waits until it is closed.
func echoing(holds map[string]chan struct{}) *Group[struct{}] {
	g := DefineGroup[struct{}]("echoing")
	out := Output(g, "out", codec.String())
	ConcurrentInput(g, "in", codec.String(), func(ctx *Context[struct{}], v string) error {
		if ch := holds[v]; ch != nil {
			<-ch
		}
		return out.Emit(ctx, ctx.Key(), v)
	}, 4)
	return g
}

// settle takes back n records the workers finished.
func settle[V any](t *testing.T, e *engine[V], n int) {
	t.Helper()
	for range n {
		select {
		case c := <-e.concurrentDone():
			if err := e.finished(c); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no record finished within 10s")
		}
	}
}

// write is what the task does at prepare: it returns the values to write
// and the offset to commit.
func write[V any](e *engine[V]) ([]string, int64) {
	vs, at, _ := writeMeta(e)
	return vs, at
}

// writeMeta is write, with the offsets the commit's metadata lists as
// finished.
func writeMeta[V any](e *engine[V]) ([]string, int64, []ccRange) {
	at := int64(-1)
	var meta string
	out := e.concurrentWrite(func(_ string, eo kgo.EpochOffset, m string) { at, meta = eo.Offset, m })
	var vs []string
	for _, r := range out {
		vs = append(vs, string(r.Value))
	}
	return vs, at, decodeFinished(at, meta)
}

func TestConcurrentEngineWritesTheEmitsOfRecordsFinishedAboveTheLowestUnfinishedWithTheMetadataListingThemExactlyOnce(t *testing.T) {
	hold := make(chan struct{})
	e, _, _ := newTestEngine(t, echoing(map[string]chan struct{}{"a0": hold}), Guarantee(ExactlyOnce))
	if err := e.handConcurrent(recs("a", "a0", "b", "b1", "c", "c2")); err != nil {
		t.Fatal(err)
	}
	settle(t, e, 2)
	if vs, at, done := writeMeta(e); !slices.Equal(vs, []string{"b1", "c2"}) || at != 0 || !slices.Equal(done, []ccRange{{1, 3}}) {
		t.Fatalf("wrote %v and committed %d listing %v with a0 unfinished, want [b1 c2], offset 0 and offsets 1 and 2 finished", vs, at, done)
	}
	close(hold)
	settle(t, e, 1)
	if vs, at, done := writeMeta(e); !slices.Equal(vs, []string{"a0"}) || at != 3 || done != nil {
		t.Fatalf("wrote %v and committed %d listing %v, want [a0] alone, written once, and offset 3", vs, at, done)
	}
}

func TestConcurrentEngineWritesTheEmitsOfAnAbortedTransactionAgain(t *testing.T) {
	e, _, _ := newTestEngine(t, echoing(nil), Guarantee(ExactlyOnce))
	if err := e.handConcurrent(recs("a", "a0", "b", "b1", "c", "c2")); err != nil {
		t.Fatal(err)
	}
	settle(t, e, 3)
	first, _ := write(e)
	if err := e.concurrentEnded(false); err != nil {
		t.Fatal(err)
	}
	// The consumer rewinds to what it believes committed and hands the
	// records again: the engine has them, and drops them.
	if err := e.handConcurrent(recs("a", "a0", "b", "b1", "c", "c2")[1:]); err != nil {
		t.Fatal(err)
	}
	if n := e.concurrentHeld(); n != 0 {
		t.Fatalf("%d records taken again after the abort, want none: their outcome is kept", n)
	}
	again, at := write(e)
	if !slices.Equal(first, []string{"a0", "b1", "c2"}) || !slices.Equal(again, first) || at != 3 {
		t.Fatalf("wrote %v, then %v with offset %d after the abort; want [a0 b1 c2] both times, committing 3", first, again, at)
	}
	if err := e.concurrentEnded(true); err != nil {
		t.Fatal(err)
	}
	if vs, at := write(e); len(vs) != 0 || at != 3 {
		t.Fatalf("wrote %v (offset %d) after the commit, want nothing more and offset 3", vs, at)
	}
	if e.concurrentBusy() {
		t.Fatal("engine busy after the commit of everything it took")
	}
}

func TestConcurrentEngineTakesRecordsWhileTheReleasedWaitForTheirTransaction(t *testing.T) {
	g := DefineGroup[struct{}]("pending")
	out := Output(g, "out", codec.String())
	ConcurrentInput(g, "in", codec.String(), func(ctx *Context[struct{}], v string) error {
		return out.Emit(ctx, ctx.Key(), v)
	}, 2, MaxPending(2))
	e, _, _ := newTestEngine(t, g, Guarantee(ExactlyOnce))
	if err := e.handConcurrent(recs("a", "0", "b", "1", "c", "2")); err != nil {
		t.Fatal(err)
	}
	// No transaction ends meanwhile: the third record is taken once the
	// first two finished.
	settle(t, e, 3)
	if vs, at := write(e); !slices.Equal(vs, []string{"0", "1", "2"}) || at != 3 {
		t.Fatalf("wrote %v and committed %d, want [0 1 2] and offset 3", vs, at)
	}
}

func TestConcurrentEngineKeepsWhatWasReleasedAfterPrepareForTheNextTransaction(t *testing.T) {
	hold := make(chan struct{})
	e, _, _ := newTestEngine(t, echoing(map[string]chan struct{}{"a0": hold}), Guarantee(ExactlyOnce))
	if err := e.handConcurrent(recs("a", "a0", "b", "b1")); err != nil {
		t.Fatal(err)
	}
	settle(t, e, 1)
	if vs, at := write(e); !slices.Equal(vs, []string{"b1"}) || at != 0 {
		t.Fatalf("wrote %v and committed %d with a0 unfinished, want b1's emit and offset 0", vs, at)
	}
	// a0 finishes between the prepare and the end of the transaction.
	close(hold)
	settle(t, e, 1)
	if err := e.concurrentEnded(true); err != nil {
		t.Fatal(err)
	}
	if !e.concurrentBusy() {
		t.Fatal("engine not busy with a0 and b1 released and not yet committed")
	}
	if vs, at := write(e); !slices.Equal(vs, []string{"a0"}) || at != 2 {
		t.Fatalf("wrote %v and committed %d in the next transaction, want [a0] and offset 2", vs, at)
	}
}

func TestConcurrentEngineSkipsTheRecordsTheCommittedMetadataListsAsFinished(t *testing.T) {
	e, _, _ := newTestEngine(t, echoing(nil), Guarantee(ExactlyOnce))
	// Committed at offset 1, with offsets 2 and 4 finished above it.
	e.resumeConcurrent("in", 1, encodeFinished(1, []int64{2, 4}))
	all := recs("a", "a0", "b", "b1", "c", "c2", "d", "d3", "e", "e4", "f", "f5")
	if err := e.handConcurrent(all[1:]); err != nil {
		t.Fatal(err)
	}
	settle(t, e, 3)
	if vs, at := write(e); !slices.Equal(vs, []string{"b1", "d3", "f5"}) || at != 6 {
		t.Fatalf("wrote %v and committed %d, want the emits of the unfinished records alone, [b1 d3 f5], and offset 6", vs, at)
	}
}
