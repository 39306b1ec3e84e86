package sluice_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// Processors of one group may share a process and a state directory, and a
// group with a Lookup table is no exception: both processors read the table
// and neither fails to open its copy.
func TestProcessorsOfAGroupWithALookupShareAProcessAndAStateDirectory(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	eo := emitterOpts(b, parts)
	prices := sluice.DefineGroup[string]("catalog")
	sluice.Persist(prices, codec.String())
	sluice.Input(prices, "price-changes", codec.String(), func(ctx *sluice.Context[string], v string) error {
		ctx.SetValue(v)
		return nil
	})
	runProcessor(t, prices, processorOpts(b, parts, t.TempDir())...)
	emitAll(t, newEmitter(t, "price-changes", eo), "apple", "3")
	pv := startView(t, "catalog-table", codec.String(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		if ok, _ := pv.Has("apple"); !ok {
			return fmt.Errorf("price of apple not in table yet")
		}
		return nil
	})

	// Each processor counts the lookups it served.
	var served [2]atomic.Int64
	define := func(i int) *sluice.Group[string] {
		g := sluice.DefineGroup[string]("basket")
		sluice.Persist(g, codec.String())
		lookup := sluice.Lookup(g, "catalog-table", codec.String())
		sluice.Input(g, "picks", codec.String(), func(ctx *sluice.Context[string], product string) error {
			price, ok, err := lookup.Get(ctx, product)
			if err != nil || !ok {
				return fmt.Errorf("no price for %s: %v", product, err)
			}
			served[i].Add(1)
			ctx.SetValue(price)
			return nil
		})
		return g
	}
	// processorOpts gives each processor a Pebble builder of its own, on
	// the same directory.
	dir := t.TempDir()
	procs := []*running{
		runProcessor(t, define(0), processorOpts(b, parts, dir)...),
		runProcessor(t, define(1), processorOpts(b, parts, dir)...),
	}
	em := newEmitter(t, "picks", eo)
	waitFor(t, 60*time.Second, func() error {
		for i, r := range procs {
			select {
			case <-r.done:
				t.Fatalf("processor %d stopped: %v", i, r.err)
			default:
			}
		}
		// Keys on every partition, so that whoever owns which, both serve.
		for k := range 16 {
			emitAll(t, em, fmt.Sprintf("user-%d", k), "apple")
		}
		if served[0].Load() == 0 || served[1].Load() == 0 {
			return fmt.Errorf("lookups served: %d and %d, want both above 0", served[0].Load(), served[1].Load())
		}
		return nil
	})
	for _, r := range procs {
		r.stop(t)
	}
}

// fragileCodec panics on the bytes "boom", as a hand-written codec may on
// bytes it did not expect.
type fragileCodec struct{}

func (fragileCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }

func (fragileCodec) Decode(b []byte) (string, error) {
	if string(b) == "boom" {
		panic("unexpected bytes")
	}
	return string(b), nil
}

// Get returns an error for a row its codec panics on, as for one it fails
// to decode, so that the handler decides what follows.
func TestJoinAndLookupGetReturnAnErrorForARowTheirCodecPanicsOn(t *testing.T) {
	g := sluice.DefineGroup[string]("fragile")
	sluice.Persist(g, codec.String())
	lk := sluice.Lookup(g, "fragile-lookup", codec.Codec[string](fragileCodec{}))
	j := sluice.Join(g, "fragile-join", codec.Codec[string](fragileCodec{}))
	sluice.Input(g, "fragile-in", codec.String(), func(ctx *sluice.Context[string], v string) error {
		var err error
		if v == "join" {
			_, _, err = j.Get(ctx)
		} else {
			_, _, err = lk.Get(ctx, v)
		}
		if err == nil {
			return errors.New("no error")
		}
		ctx.SetValue(err.Error())
		return nil
	})
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.SeedLookup(tt, lk, "x", "boom"); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.SeedJoin(tt, j, "by-join", "boom"); err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]string{"by-lookup": "x", "by-join": "join"} {
		if err := sluicetest.Send(tt, "fragile-in", key, v); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, ok, err := tt.Row(key)
		if err != nil || !ok || !strings.Contains(got, "unexpected bytes") {
			t.Errorf("%s: the handler saw %q (%v, %v), want an error that says the codec panicked", key, got, ok, err)
		}
	}
}
