package sluice_test

import (
	"errors"
	"strings"
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
