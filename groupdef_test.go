package sluice_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

func TestGroupOwnTopicsCannotBeEdgesWhateverTheOrderOfDefinition(t *testing.T) {
	noop := func(*sluice.Context[counter], string) error { return nil }
	noResult := func(*sluice.Context[counter], sluice.WindowResult[int64]) error { return nil }
	count := sluice.Aggregator[string, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
		Codec: codec.Int64(),
	}
	aggregate := func(g *sluice.Group[counter]) {
		sluice.Aggregate(g, "counts", sluice.Tumbling(time.Minute), count, noResult)
	}
	cases := []struct {
		name   string
		define func(g *sluice.Group[counter])
		want   string // in the error
	}{
		{"output to the table topic, then Persist", func(g *sluice.Group[counter]) {
			sluice.Output(g, "own-table", codec.String())
			sluice.Persist(g, codec.JSON[counter]())
		}, "own-table"},
		{"input of the table topic, then Persist", func(g *sluice.Group[counter]) {
			sluice.Input(g, "own-table", codec.String(), noop)
			sluice.Persist(g, codec.JSON[counter]())
		}, "own-table"},
		{"lookup of the table topic, then Persist", func(g *sluice.Group[counter]) {
			sluice.Lookup(g, "own-table", codec.String())
			sluice.Persist(g, codec.JSON[counter]())
		}, "own-table"},
		{"output to the table topic, then Aggregate", func(g *sluice.Group[counter]) {
			sluice.Output(g, "own-table", codec.String())
			aggregate(g)
		}, "own-table"},
		{"output to the windows topic, then Aggregate", func(g *sluice.Group[counter]) {
			sluice.Output(g, "own-windows", codec.String())
			aggregate(g)
		}, "own-windows"},
		{"Aggregate, then an output to the windows topic", func(g *sluice.Group[counter]) {
			aggregate(g)
			sluice.Output(g, "own-windows", codec.String())
		}, "own-windows"},
	}
	for _, c := range cases {
		g := sluice.DefineGroup[counter]("own")
		sluice.Input(g, "in", codec.String(), noop)
		c.define(g)
		err := g.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate returned %v, want an error naming %s", c.name, err, c.want)
		}
	}

	g := sluice.DefineGroup[counter]("own")
	sluice.Input(g, "in", codec.String(), noop)
	aggregate(g)
	_, err := sluice.NewProcessor(g, sluice.OnError(sluice.DeadLetter(g.WindowsTopic())), sluice.Storage(memory.Builder()))
	if err == nil || !strings.Contains(err.Error(), g.WindowsTopic()) {
		t.Errorf("dead letters to the windows topic: NewProcessor returned %v, want an error naming %s", err, g.WindowsTopic())
	}
}
