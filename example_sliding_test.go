package sluice_test

import (
	"fmt"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// Failed logins of a user within any minute: sliding windows hold every
// set of a user's failures at most a minute apart, so three failures in
// 50 seconds are caught whatever their alignment to the clock, which
// tumbling windows of a minute could split. Each window's result is final
// once stream time passes its end.
func ExampleSliding() {
	g := sluice.DefineGroup[string]("logins")
	alerts := sluice.Output(g, "login-alerts", codec.String())
	failures := sluice.Aggregator[string, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
		Codec: codec.Int64(),
	}
	perMinute := sluice.Aggregate(g, "failures", sluice.Sliding(time.Minute), failures,
		func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
			if r.Value < 3 {
				return nil
			}
			return alerts.Emit(ctx, r.Key, fmt.Sprintf("%s: %d failed logins from %s to %s",
				r.Key, r.Value, r.Window.Start.Format("15:04:05"), r.Window.End.Format("15:04:05")))
		})
	sluice.WindowedInput(g, "failed-logins", codec.String(), perMinute)

	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		user string
		sec  int
	}{{"mallory", 40}, {"mallory", 70}, {"bob", 75}, {"mallory", 90}, {"bob", 200}, {"eve", 400}} {
		at := sluicetest.WithTimestamp(start.Add(time.Duration(f.sec) * time.Second))
		if err := sluicetest.Send(tt, "failed-logins", f.user, "bad password", at); err != nil {
			fmt.Println(err)
			return
		}
	}
	msgs, _ := sluicetest.Output(tt, alerts)
	for _, m := range msgs {
		fmt.Println(m.Value)
	}
	// Output:
	// mallory: 3 failed logins from 12:00:30 to 12:01:30
}
