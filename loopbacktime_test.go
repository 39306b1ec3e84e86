package sluice_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

// TestLoopbackRecordKeepsTheTimeOfTheRecordThatSentIt: a record sent
// through the loopback is read with the time of the record whose handler
// sent it, not the time it was produced, so a backfill of old records does
// not move stream time to now through its loopbacks.
func TestLoopbackRecordKeepsTheTimeOfTheRecordThatSentIt(t *testing.T) {
	b := startBroker(t)
	g := sluice.DefineGroup[string]("looptime")
	sluice.Persist(g, codec.String())
	out := sluice.Output(g, "looptime-out", codec.String())
	back := sluice.Loop(g, codec.String(), func(ctx *sluice.Context[string], v string) error {
		return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s at %d stream %d", v, ctx.Timestamp().Unix(), ctx.StreamTime().Unix()))
	})
	sluice.Input(g, "looptime-in", codec.String(), func(ctx *sluice.Context[string], v string) error {
		return back.Loopback(ctx, ctx.Key(), v)
	})
	runProcessor(t, g, processorOpts(b, 1, t.TempDir())...)
	const then = 1577836800 // 2020-01-01
	want := []string{
		fmt.Sprintf("first at %d stream %d", then, then),
		fmt.Sprintf("second at %d stream %d", then+60, then+60),
	}
	// Stream time is the partition's latest record time, inputs and
	// loopbacks alike: the second input goes in once the first loopback
	// was read, or the first loopback could see the second's time.
	produceAt(t, b, "looptime-in", then, "k", "first")
	awaitLooptimeOutputs(t, b, want[:1])
	produceAt(t, b, "looptime-in", then+60, "k", "second")
	awaitLooptimeOutputs(t, b, want)
}

func awaitLooptimeOutputs(t *testing.T, b *broker.Broker, want []string) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		got := readTopic(t, b.Addrs(), "looptime-out", true)
		if len(got) < len(want) {
			return fmt.Errorf("outputs %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("outputs %q, want %q", got, want)
			}
		}
		return nil
	})
}
