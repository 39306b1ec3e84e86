package sluicetest_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// summing is a batch group that adds the numbers of each batch to their
// key's row and sends each new sum, with the batch's size, to "sums".
func summing() (*sluice.BatchGroup[string, int64], *sluice.BatchStore[int64], *sluice.BatchOutputTopic[string]) {
	bg := sluice.DefineBatchGroup[string, int64]("summing")
	sluice.BatchInput(bg, "numbers", codec.String(), codec.Int64())
	table := sluice.BatchTable(bg, codec.Int64())
	out := sluice.BatchOutput(bg, "sums", codec.String())
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, int64], s sluice.Sender) error {
		st := table.Store(ctx)
		for _, r := range recs {
			sum, _, err := st.Get(context.Background(), r.Key)
			if err != nil {
				return err
			}
			sum += r.Value
			if err := st.Put(context.Background(), r.Key, sum); err != nil {
				return err
			}
			if err := out.Send(s, r.Key, strconv.FormatInt(sum, 10)+"/"+strconv.Itoa(len(recs))); err != nil {
				return err
			}
		}
		return nil
	})
	return bg, table, out
}

func TestBatchTesterHandsBatchesOfAtMostBatchSizeOverTheTable(t *testing.T) {
	bg, table, out := summing()
	bt, err := sluicetest.NewBatch(bg, sluicetest.Partitions(1), sluicetest.ManualCommit(),
		sluicetest.BatchProcessorOptions(sluice.BatchSize(2)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.SetTableRow(bt, table, "k", 100); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{1, 2, 3} {
		if err := sluicetest.Send(bt, "numbers", "k", n); err != nil {
			t.Fatal(err)
		}
	}
	if sums, _ := sluicetest.BatchOutput(bt, out); len(sums) != 0 {
		t.Fatalf("sums before the commit = %+v, want none: the batch is open", sums)
	}
	if err := bt.Commit(); err != nil {
		t.Fatal(err)
	}
	sums, err := sluicetest.BatchOutput(bt, out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range sums {
		got = append(got, m.Value)
	}
	if want := []string{"101/2", "103/2", "106/1"}; !slices.Equal(got, want) {
		t.Errorf("sums = %q, want %q: batches of 2 then 1 over the seeded row", got, want)
	}
	bt.Crash()
	if v, ok, err := sluicetest.TableRow(bt, table, "k"); err != nil || !ok || v != 106 {
		t.Errorf("row k after the crash = %d, %v, %v; want 106 restored from the changelog", v, ok, err)
	}
	if s := bt.Stats(); s.Batches != 2 || s.Records != 3 {
		t.Errorf("stats: %d batches of %d records, want 2 of 3", s.Batches, s.Records)
	}
}
