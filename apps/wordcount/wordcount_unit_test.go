package wordcount_test

// Unit tests of the word count's batch groups, without a broker: sluicetest
// runs them through the batch processor's partition engine.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/wordcount"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
	"github.com/sluice-io/sluice/sluicetest"
)

func newBatchTester(t *testing.T, bg *sluice.BatchGroup[string, string], opts ...sluicetest.Option) *sluicetest.BatchTester[string, string] {
	t.Helper()
	bt, err := sluicetest.NewBatch(bg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

func sendWords(t *testing.T, bt *sluicetest.BatchTester[string, string], topic string, words ...string) {
	t.Helper()
	for _, w := range words {
		if err := sluicetest.Send(bt, topic, w, w); err != nil {
			t.Fatal(err)
		}
	}
}

// reports returns what the counting group wrote, per word, in order.
func reports(bt *sluicetest.BatchTester[string, string]) map[string][]string {
	out := make(map[string][]string)
	for _, r := range bt.Records(wordcount.Output) {
		out[r.Key] = append(out[r.Key], string(r.Value))
	}
	return out
}

func TestSplitSendsEachWordKeyedByItselfToItsPartition(t *testing.T) {
	bt := newBatchTester(t, wordcount.DefineSplit(wordcount.SplitGroup, wordcount.Input, wordcount.Words))
	if err := sluicetest.Send(bt, wordcount.Input, "line-1", "to be  or\tnot to be"); err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, r := range bt.Records(wordcount.Words) {
		if r.Key != string(r.Value) || r.Partition != bt.PartitionOf(r.Key) {
			t.Errorf("word record %q=%q on partition %d, want keyed by itself on %d", r.Key, r.Value, r.Partition, bt.PartitionOf(r.Key))
		}
		words = append(words, r.Key)
	}
	if want := []string{"to", "be", "or", "not", "to", "be"}; !slices.Equal(words, want) {
		t.Errorf("words = %q, want %q", words, want)
	}
}

func TestCountReportsEachWordWithItsCountBefore(t *testing.T) {
	for _, store := range []string{"table", "memory"} {
		t.Run(store, func(t *testing.T) {
			var counts kv.Store[int64]
			if store == "memory" {
				counts = kv.NewMemory[int64]()
			}
			// Small batches, several per partition, committed at once.
			bt := newBatchTester(t, wordcount.DefineCount(wordcount.Group, wordcount.Words, wordcount.Output, counts),
				sluicetest.ManualCommit(), sluicetest.BatchProcessorOptions(sluice.BatchSize(2)))
			sendWords(t, bt, wordcount.Words, "a", "b", "a", "a", "c", "b")
			if err := bt.Commit(); err != nil {
				t.Fatal(err)
			}
			got := reports(bt)
			want := map[string][]string{
				"a": {"a has been seen 0 times", "a has been seen 1 times", "a has been seen 2 times"},
				"b": {"b has been seen 0 times", "b has been seen 1 times"},
				"c": {"c has been seen 0 times"},
			}
			for w, reps := range want {
				if !slices.Equal(got[w], reps) {
					t.Errorf("reports of %s = %q, want %q", w, got[w], reps)
				}
			}
			if s := bt.Stats(); s.Records != 6 || s.Batches < 3 {
				t.Errorf("stats: %d records in %d batches, want 6 in at least 3", s.Records, s.Batches)
			}
		})
	}
}

func TestCountTableContinuesAfterACrash(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) { testCountTableContinuesAfterACrash(t, g) })
	}
}

func testCountTableContinuesAfterACrash(t *testing.T, g sluice.DeliveryGuarantee) {
	bt := newBatchTester(t, wordcount.DefineCount(wordcount.Group, wordcount.Words, wordcount.Output, nil),
		sluicetest.ManualCommit(), sluicetest.BatchProcessorOptions(sluice.Guarantee(g)))
	sendWords(t, bt, wordcount.Words, "a", "a")
	if err := bt.Commit(); err != nil {
		t.Fatal(err)
	}
	sendWords(t, bt, wordcount.Words, "a") // not yet in a batch, read again after the crash
	bt.Crash()
	raw, ok, err := bt.RawRow("a")
	if err != nil || !ok {
		t.Fatalf("row a = %q, %v, %v; want the committed count", raw, ok, err)
	}
	if n, _ := codec.Int64().Decode(raw); n != 2 {
		t.Errorf("row a after the crash = %d, want 2", n)
	}
	if err := bt.Commit(); err != nil {
		t.Fatal(err)
	}
	got := reports(bt)["a"]
	want := strings.Split("a has been seen 0 times|a has been seen 1 times|a has been seen 2 times", "|")
	if !slices.Equal(got, want) {
		t.Errorf("reports of a = %q, want %q", got, want)
	}
	raw, _, _ = bt.RawRow("a")
	if n, _ := codec.Int64().Decode(raw); n != 3 {
		t.Errorf("row a = %d, want 3", n)
	}
}

func TestCountFailedBatchIsDeadLetteredWithoutTableWrites(t *testing.T) {
	// A word the handler cannot store: the counts store refuses it.
	bg := wordcount.DefineCount(wordcount.Group, wordcount.Words, wordcount.Output, refusing{kv.NewMemory[int64]()})
	bt := newBatchTester(t, bg, sluicetest.BatchProcessorOptions(sluice.OnError(sluice.DeadLetter("word-dead"))))
	sendWords(t, bt, wordcount.Words, "ok", "bad")
	dls := bt.DeadLetters()
	if len(dls) != 1 || dls[0].Key != "bad" {
		t.Fatalf("dead letters = %+v, want the batch of bad", dls)
	}
	if kind, _ := dls[0].Header(sluice.HeaderErrorKind); kind != "handler" {
		t.Errorf("error kind = %q, want handler", kind)
	}
	if got := reports(bt); len(got["bad"]) != 0 || len(got["ok"]) != 1 {
		t.Errorf("reports = %q, want ok's only", got)
	}
}

// refusing is a counts store that refuses to store the word "bad".
type refusing struct{ kv.Store[int64] }

func (r refusing) PutMany(ctx context.Context, m map[string]int64) error {
	if _, ok := m["bad"]; ok {
		return fmt.Errorf("refusing to count bad")
	}
	return r.Store.PutMany(ctx, m)
}
