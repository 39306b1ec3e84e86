package sluicetest_test

import (
	"fmt"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

type user struct{ Clicks int }

// A click counter that announces every tenth click, tested without Kafka.
func Example() {
	g := sluice.DefineGroup[user]("clicks")
	sluice.Persist(g, codec.JSON[user]())
	milestones := sluice.Output(g, "milestones", codec.String())
	sluice.Input(g, "user-clicks", codec.String(), func(ctx *sluice.Context[user], _ string) error {
		u, _ := ctx.Value()
		u.Clicks++
		ctx.SetValue(u)
		if u.Clicks%10 == 0 {
			return milestones.Emit(ctx, ctx.Key(), fmt.Sprintf("%s clicked %d times", ctx.Key(), u.Clicks))
		}
		return nil
	})

	tt, err := sluicetest.New(g, sluicetest.Partitions(4))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := tt.SetRow("user-1", user{Clicks: 8}); err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		if err := sluicetest.Send(tt, "user-clicks", "user-1", "click"); err != nil {
			fmt.Println(err)
			return
		}
	}
	u, _, _ := tt.Row("user-1")
	fmt.Println("row:", u.Clicks)
	msgs, _ := sluicetest.Output(tt, milestones)
	for _, m := range msgs {
		fmt.Printf("%s/%d %s: %s\n", m.Topic, m.Partition, m.Key, m.Value)
	}

	// A crash loses nothing that was committed.
	tt.Crash()
	u, _, _ = tt.Row("user-1")
	fmt.Println("after a crash:", u.Clicks)
	// Output:
	// row: 11
	// milestones/0 user-1: user-1 clicked 10 times
	// after a crash: 11
}

// Call tests one handler on one record, here a handler that refuses a
// click from a blocked user: the failed record leaves the row as it was.
func ExampleCall() {
	count := func(ctx *sluice.Context[user], click string) error {
		if click == "blocked" {
			return fmt.Errorf("user %s is blocked", ctx.Key())
		}
		u, _ := ctx.Value()
		u.Clicks++
		ctx.SetValue(u)
		return nil
	}
	g := sluice.DefineGroup[user]("clicks")
	sluice.Persist(g, codec.JSON[user]())
	sluice.Input(g, "user-clicks", codec.String(), count)

	tt, err := sluicetest.New(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = tt.SetRow("user-1", user{Clicks: 4})
	fmt.Println(sluicetest.Call(tt, count, "user-1", "click"))
	fmt.Println(sluicetest.Call(tt, count, "user-1", "blocked"))
	u, _, _ := tt.Row("user-1")
	fmt.Println("clicks:", u.Clicks)
	// Output:
	// <nil>
	// group clicks: record user-clicks/8@-1 (key "user-1"): user user-1 is blocked
	// clicks: 5
}
