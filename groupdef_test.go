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

func TestInvalidTopicNamesAreRejectedBeforeRun(t *testing.T) {
	noop := func(*sluice.Context[counter], string) error { return nil }
	long := strings.Repeat("a", 250)
	for _, topic := range []string{"user clicks", "clicks/eu", "é", ".", "..", long} {
		g := sluice.DefineGroup[counter]("names")
		sluice.Input(g, topic, codec.String(), noop)
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "input") {
			t.Errorf("input %q: Validate returned %v, want an error naming the input", topic, err)
		}
		g = defineCounter("names", "in")
		sluice.Output(g, topic, codec.String())
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "output") {
			t.Errorf("output %q: Validate returned %v, want an error naming the output", topic, err)
		}
		_, err := sluice.NewProcessor(defineCounter("names", "in"), sluice.OnError(sluice.DeadLetter(topic)), sluice.Storage(memory.Builder()))
		if err == nil || !strings.Contains(err.Error(), "dead-letter") {
			t.Errorf("dead-letter topic %q: NewProcessor returned %v, want an error naming it", topic, err)
		}
		if _, err := sluice.NewView(topic, codec.String()); err == nil {
			t.Errorf("NewView(%q) returned no error", topic)
		}
		if _, err := sluice.NewWindowView(topic, "counts", codec.Int64()); err == nil {
			t.Errorf("NewWindowView(%q) returned no error", topic)
		}
		// No broker listens there: the name must be rejected before the
		// emitter connects.
		if _, err := sluice.NewEmitter(topic, codec.String(), sluice.Brokers("127.0.0.1:1")); err == nil || !strings.Contains(err.Error(), "topic name") {
			t.Errorf("NewEmitter(%q) returned %v, want an error about the topic name", topic, err)
		}
	}
	// A group's name names the topics it keeps; a consumer group id may be
	// any string, so a group that keeps none may have any name.
	for _, name := range []string{"my group", strings.Repeat("g", 245)} {
		if err := defineCounter(name, "in").Validate(); err == nil || !strings.Contains(err.Error(), "group name") {
			t.Errorf("group %q with a table: Validate returned %v, want an error about the group name", name, err)
		}
		g := sluice.DefineGroup[counter](name)
		sluice.Input(g, "in", codec.String(), noop)
		sluice.Aggregate(g, "counts", sluice.Tumbling(time.Minute), sluice.Aggregator[string, int64]{
			Init:  func() int64 { return 0 },
			Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
			Codec: codec.Int64(),
		}, func(*sluice.Context[counter], sluice.WindowResult[int64]) error { return nil })
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "group name") {
			t.Errorf("group %q with windows: Validate returned %v, want an error about the group name", name, err)
		}
		g = sluice.DefineGroup[counter](name)
		sluice.Input(g, "in", codec.String(), noop)
		sluice.Loop(g, codec.String(), noop)
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("group %q with a loopback: Validate returned %v, want an error about its loopback topic", name, err)
		}
		bg := sluice.DefineBatchGroup[string, string](name)
		sluice.BatchInput(bg, "in", codec.String(), codec.String())
		sluice.BatchTable(bg, codec.String())
		sluice.HandleBatches(bg, func(sluice.BatchContext, []sluice.Record[string, string], sluice.Sender) error { return nil })
		if err := bg.Validate(); err == nil || !strings.Contains(err.Error(), "table") {
			t.Errorf("batch group %q with a table: Validate returned %v, want an error about its table topic", name, err)
		}
		g = sluice.DefineGroup[counter](name)
		sluice.Input(g, "in", codec.String(), noop)
		if err := g.Validate(); err != nil {
			t.Errorf("group %q without topics of its own: %v", name, err)
		}
	}
	bg := sluice.DefineBatchGroup[string, string]("names")
	sluice.BatchInput(bg, "user clicks", codec.String(), codec.String())
	sluice.HandleBatches(bg, func(sluice.BatchContext, []sluice.Record[string, string], sluice.Sender) error { return nil })
	if err := bg.Validate(); err == nil || !strings.Contains(err.Error(), "input") {
		t.Errorf("batch input %q: Validate returned %v, want an error naming the input", "user clicks", err)
	}
	// Every character Kafka allows, at the longest length it allows.
	ok := "Az09._-" + strings.Repeat("x", 242)
	if err := defineCounter("names", ok).Validate(); err != nil {
		t.Errorf("input %q: %v", ok, err)
	}
}
