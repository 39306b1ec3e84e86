package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
	"github.com/sluice-io/sluice/sluicetest"
)

// refusingCodec writes strings unchanged and refuses to decode "corrupt".
type refusingCodec struct{}

func (refusingCodec) Encode(s string) ([]byte, error) { return []byte(s), nil }
func (refusingCodec) Decode(b []byte) (string, error) {
	if string(b) == "corrupt" {
		return "", errors.New("corrupt row")
	}
	return string(b), nil
}

// TestBatchTableRowThatDoesNotDecodeIsAKVDecodeError holds the store of a
// batch group's table to the kv.Store contract that memory and Redis
// stores keep: a row its codec cannot decode is a *kv.DecodeError naming
// the key, from Get and from GetMany.
func TestBatchTableRowThatDoesNotDecodeIsAKVDecodeError(t *testing.T) {
	bg := sluice.DefineBatchGroup[string, string]("corrupt-rows")
	sluice.BatchInput(bg, "in", codec.String(), codec.String())
	table := sluice.BatchTable(bg, codec.Codec[string](refusingCodec{}))
	var getErr, getManyErr error
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], _ sluice.Sender) error {
		st := table.Store(ctx)
		_, _, getErr = st.Get(ctx.Context(), "k")
		_, getManyErr = st.GetMany(ctx.Context(), []string{"other", "k"})
		return nil
	})
	bt, err := sluicetest.NewBatch(bg, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.SetTableRow(bt, table, "k", "corrupt"); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(bt, "in", "k", "go"); err != nil {
		t.Fatal(err)
	}
	for op, err := range map[string]error{"get": getErr, "get many": getManyErr} {
		var de *kv.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s of an undecodable row: error %v (%T), want a *kv.DecodeError", op, err, err)
			continue
		}
		if de.Key != "k" {
			t.Errorf("%s: DecodeError.Key = %q, want k", op, de.Key)
		}
		if !strings.Contains(err.Error(), "corrupt-rows") || !strings.Contains(err.Error(), "corrupt row") {
			t.Errorf("%s: error %q names neither the group nor the codec's error", op, err)
		}
	}
}

// TestSenderAndTableStoreFailOnceTheirHandlerReturned: the Sender and the
// table store a handler gets belong to its batch. Used after the handler
// returned, they fail, and what they were given is neither produced with a
// later batch nor written to the table; during the call, goroutines the
// handler waits for may send at once.
func TestSenderAndTableStoreFailOnceTheirHandlerReturned(t *testing.T) {
	bg := sluice.DefineBatchGroup[string, string]("late-senders")
	sluice.BatchInput(bg, "in", codec.String(), codec.String())
	table := sluice.BatchTable(bg, codec.String())
	out := sluice.BatchOutput(bg, "out", codec.String())
	var (
		kept      sluice.Sender
		keptStore kv.Store[string]
	)
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
		if kept == nil {
			kept, keptStore = s, table.Store(ctx)
		}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 50 {
					if err := out.Send(s, recs[0].Value, fmt.Sprint(i, "/", j)); err != nil {
						t.Errorf("send from a goroutine during the call: %v", err)
					}
				}
			})
		}
		wg.Wait()
		return table.Store(ctx).Put(ctx.Context(), recs[0].Value, "handled")
	})
	bt, err := sluicetest.NewBatch(bg, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(bt, "in", "k", "first"); err != nil {
		t.Fatal(err)
	}
	if err := out.Send(kept, "late", "late"); err == nil {
		t.Error("send after the handler returned: no error")
	}
	if err := keptStore.Put(context.Background(), "late", "late"); err == nil {
		t.Error("table put after the handler returned: no error")
	}
	if _, _, err := keptStore.Get(context.Background(), "first"); err == nil {
		t.Error("table get after the handler returned: no error")
	}
	if err := sluicetest.Send(bt, "in", "k", "second"); err != nil {
		t.Fatal(err)
	}
	msgs, err := sluicetest.BatchOutput(bt, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 400 {
		t.Errorf("%d records produced, want 400: 200 per batch", len(msgs))
	}
	for _, m := range msgs {
		if m.Key == "late" {
			t.Errorf("a record sent after its handler returned was produced: %+v", m.Record)
		}
	}
	if _, ok, err := sluicetest.TableRow(bt, table, "late"); ok || err != nil {
		t.Errorf("row written after its handler returned: ok=%v err=%v", ok, err)
	}
}
