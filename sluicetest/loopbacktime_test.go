package sluicetest_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// TestTesterReadsALoopbackWithTheTimeOfTheRecordThatSentIt: the loop
// handler sees the time of the record whose handler sent the loopback, and
// stream time stays there, as on Kafka.
func TestTesterReadsALoopbackWithTheTimeOfTheRecordThatSentIt(t *testing.T) {
	g := sluice.DefineGroup[string]("looptime")
	sluice.Persist(g, codec.String())
	out := sluice.Output(g, "looptime-out", codec.String())
	back := sluice.Loop(g, codec.String(), func(ctx *sluice.Context[string], v string) error {
		return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s at %d stream %d", v, ctx.Timestamp().Unix(), ctx.StreamTime().Unix()))
	})
	sluice.Input(g, "looptime-in", codec.String(), func(ctx *sluice.Context[string], v string) error {
		return back.Loopback(ctx, ctx.Key(), v)
	})
	tt := newTester(t, g)
	const then = 1577836800 // 2020-01-01
	send(t, tt, "looptime-in", "k", "first", sluicetest.WithTimestamp(time.Unix(then, 0)))
	send(t, tt, "looptime-in", "k", "second", sluicetest.WithTimestamp(time.Unix(then+60, 0)))
	want := []string{
		fmt.Sprintf("first at %d stream %d", then, then),
		fmt.Sprintf("second at %d stream %d", then+60, then+60),
	}
	if got := outputs(t, tt, out); !slices.Equal(got, want) {
		t.Errorf("outputs %q, want %q", got, want)
	}
}
