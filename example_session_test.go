package sluice_test

import (
	"fmt"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// Page views per visit: a user's views less than 30 minutes apart are one
// visit. Alice's view at 12:20 bridges her visits of 12:00 and 12:45,
// which merge: her view came 25 minutes after her latest, within the 30
// minutes of grace. A visit's result is final once stream time (the
// latest view time of the partition) reaches its end plus the gap and the
// grace: here at carol's view.
func ExampleSessions() {
	g := sluice.DefineGroup[string]("visits")
	out := sluice.Output(g, "visits", codec.String())
	views := sluice.Aggregator[string, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
		Merge: func(a, b int64) int64 { return a + b },
		Codec: codec.Int64(),
	}
	visits := sluice.Aggregate(g, "visits", sluice.Sessions(30*time.Minute).Grace(30*time.Minute), views,
		func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
			return out.Emit(ctx, r.Key, fmt.Sprintf("%s %s-%s: %d views",
				r.Key, r.Window.Start.Format("15:04"), r.Window.End.Format("15:04"), r.Value))
		})
	sluice.WindowedInput(g, "page-views", codec.String(), visits)

	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []struct {
		user string
		min  int
	}{{"alice", 0}, {"alice", 5}, {"bob", 10}, {"alice", 45}, {"alice", 20}, {"carol", 200}} {
		at := sluicetest.WithTimestamp(start.Add(time.Duration(v.min) * time.Minute))
		if err := sluicetest.Send(tt, "page-views", v.user, "/home", at); err != nil {
			fmt.Println(err)
			return
		}
	}
	msgs, _ := sluicetest.Output(tt, out)
	for _, m := range msgs {
		fmt.Println(m.Value)
	}
	// Output:
	// bob 12:10-12:10: 1 views
	// alice 12:00-12:45: 4 views
}
