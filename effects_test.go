package sluice

import (
	"context"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// After a delivery of many records, each of which emitted, the engine keeps
// no room of that size for the effects of the next: every task of a
// processor would keep it, however many partitions it owns.
func TestAnEngineKeepsNoRoomForTheEffectsOfItsLargestDelivery(t *testing.T) {
	e, _, _ := newTestEngine(t, counts())
	const n = 5000
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Topic: "in", Offset: int64(i), Key: []byte("k" + strconv.Itoa(i%10)), Value: []byte("v")})
	}
	if _, err := e.process(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if got := len(e.effects()); got != n {
		t.Fatalf("%d effects handed out, want %d", got, n)
	}
	if c := cap(e.out); c >= n {
		t.Fatalf("the engine keeps room for %d effects after handing out %d", c, n)
	}
	if _, err := e.process(context.Background(), recs("a", "x")); err != nil {
		t.Fatal(err)
	}
	if got := values(e.effects()); len(got) != 1 || got[0] != "a:a=x" {
		t.Fatalf("effects of the next record = %q, want [a:a=x]", got)
	}
}
