package sluice_test

import (
	"fmt"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// clickCount folds clicks into their count.
var clickCount = sluice.Aggregator[string, int64]{
	Init:  func() int64 { return 0 },
	Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
	Codec: codec.Int64(),
}

// clicksAt sends each user's click at its second after start.
func clicksAt(tt *sluicetest.Tester[struct{}], start time.Time, clicks ...struct {
	user string
	sec  int
}) error {
	for _, c := range clicks {
		at := sluicetest.WithTimestamp(start.Add(time.Duration(c.sec) * time.Second))
		if err := sluicetest.Send(tt, "clicks", c.user, "click", at); err != nil {
			return err
		}
	}
	return nil
}

// Clicks per user in tumbling windows of 10 seconds, with a grace of 5
// seconds for clicks that arrive out of order. A window's count is final
// once stream time (the latest click time of the partition) reaches the
// window's end plus grace: alice's click at 0:13 closes nothing, bob's at
// 0:16 closes [0:00, 0:10), and alice's click at 0:07, which came after
// that, is late and skipped.
func ExampleAggregate_tumbling() {
	g := sluice.DefineGroup[struct{}]("click-windows")
	counts := sluice.Aggregate(g, "clicks", sluice.Tumbling(10*time.Second).Grace(5*time.Second), clickCount,
		func(ctx *sluice.Context[struct{}], r sluice.WindowResult[int64]) error {
			fmt.Printf("%s [%s, %s): %d clicks\n", r.Key, r.Window.Start.UTC().Format("15:04:05"), r.Window.End.UTC().Format("15:04:05"), r.Value)
			return nil
		})
	sluice.WindowedInput(g, "clicks", codec.String(), counts)

	tt, err := sluicetest.New(g, sluicetest.Partitions(1), sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	err = clicksAt(tt, start, []struct {
		user string
		sec  int
	}{{"alice", 1}, {"alice", 9}, {"bob", 4}, {"alice", 13}, {"bob", 16}, {"alice", 7}, {"bob", 40}}...)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("late:", tt.Stats().Late)
	// Output:
	// alice [12:00:00, 12:00:10): 2 clicks
	// bob [12:00:00, 12:00:10): 1 clicks
	// alice [12:00:10, 12:00:20): 1 clicks
	// bob [12:00:10, 12:00:20): 1 clicks
	// late: 1
}

// Clicks per user over the last 10 seconds, every 5 seconds: hopping
// windows of 10 seconds that start every 5, so each click counts in two
// windows. With EmitUpdates the handler also sees each window's count as
// it grows; the final count comes once, when the window closes: before
// the click that moves stream time to its end. The last windows stay open
// until a later click, or the wall clock with IdleAdvance, closes them.
func ExampleAggregate_hopping() {
	g := sluice.DefineGroup[struct{}]("click-rates")
	counts := sluice.Aggregate(g, "clicks", sluice.Hopping(10*time.Second, 5*time.Second).EmitUpdates(), clickCount,
		func(ctx *sluice.Context[struct{}], r sluice.WindowResult[int64]) error {
			kind := "so far"
			if r.Final {
				kind = "final"
			}
			fmt.Printf("%s [%s, %s): %d %s\n", r.Key, r.Window.Start.UTC().Format("15:04:05"), r.Window.End.UTC().Format("15:04:05"), r.Value, kind)
			return nil
		})
	sluice.WindowedInput(g, "clicks", codec.String(), counts)

	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	err = clicksAt(tt, start, []struct {
		user string
		sec  int
	}{{"alice", 3}, {"alice", 7}, {"alice", 12}}...)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Output:
	// alice [11:59:55, 12:00:05): 1 so far
	// alice [12:00:00, 12:00:10): 1 so far
	// alice [11:59:55, 12:00:05): 1 final
	// alice [12:00:00, 12:00:10): 2 so far
	// alice [12:00:05, 12:00:15): 1 so far
	// alice [12:00:00, 12:00:10): 2 final
	// alice [12:00:05, 12:00:15): 2 so far
	// alice [12:00:10, 12:00:20): 1 so far
}
