package sluice_test

import (
	"errors"
	"fmt"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// The click counter: a group that keeps a row per user in its table and
// writes a line to an output at every tenth click, run by sluicetest
// through the engine a processor runs.
func ExampleDefineGroup() {
	type User struct{ Clicks int }
	g := sluice.DefineGroup[User]("clicks")
	sluice.Persist(g, codec.JSON[User]())
	milestones := sluice.Output(g, "milestones", codec.String())
	sluice.Input(g, "user-clicks", codec.String(), func(ctx *sluice.Context[User], _ string) error {
		u, _ := ctx.Value()
		u.Clicks++
		ctx.SetValue(u)
		if u.Clicks%10 == 0 {
			return milestones.Emit(ctx, ctx.Key(), fmt.Sprintf("%d clicks", u.Clicks))
		}
		return nil
	})
	fmt.Println("table topic:", g.TableTopic())

	tt, err := sluicetest.New(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 12 {
		if err := sluicetest.Send(tt, "user-clicks", "user-3", "click"); err != nil {
			fmt.Println(err)
			return
		}
	}
	u, ok, _ := tt.Row("user-3")
	fmt.Println("user-3:", u.Clicks, ok)
	msgs, _ := sluicetest.Output(tt, milestones)
	for _, m := range msgs {
		fmt.Printf("%s: %s\n", m.Key, m.Value)
	}
	// Output:
	// table topic: clicks-table
	// user-3: 12 true
	// user-3: 10 clicks
}

// A definition is checked before anything runs: mistakes that types cannot
// catch are reported together, each naming its edge.
func ExampleGroup_Validate() {
	g := sluice.DefineGroup[int64]("broken")
	sluice.Output(g, "", codec.String())
	sluice.Persist(g, nil)
	fmt.Println(g.Validate())
	// Output:
	// group broken: invalid definition: output: topic name is empty; persist: codec is nil; no inputs: a group needs at least one Input
}

// A join reads the row of the record's own key in a co-partitioned table:
// orders keyed by customer meet their customer's row.
func ExampleJoin() {
	type Customer struct{ Name, Country string }
	g := sluice.DefineGroup[int64]("orders-by-country")
	customers := sluice.Join(g, "customers", codec.JSON[Customer]())
	byCountry := sluice.Output(g, "orders-by-country", codec.String())
	sluice.Input(g, "orders", codec.String(), func(ctx *sluice.Context[int64], item string) error {
		c, ok, err := customers.Get(ctx)
		if err != nil || !ok {
			return fmt.Errorf("customer %s: found %v: %w", ctx.Key(), ok, err)
		}
		return byCountry.Emit(ctx, c.Country, fmt.Sprintf("%s ordered %s", c.Name, item))
	})

	tt, err := sluicetest.New(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := sluicetest.SeedJoin(tt, customers, "c-1", Customer{"Ada", "UK"}); err != nil {
		fmt.Println(err)
		return
	}
	if err := sluicetest.Send(tt, "orders", "c-1", "tea"); err != nil {
		fmt.Println(err)
		return
	}
	msgs, _ := sluicetest.Output(tt, byCountry)
	for _, m := range msgs {
		fmt.Printf("%s: %s\n", m.Key, m.Value)
	}
	// Output:
	// UK: Ada ordered tea
}

// A lookup reads any key of a table that every processor keeps in full: a
// click names its ad, whose campaign is looked up by the ad's id.
func ExampleLookup() {
	g := sluice.DefineGroup[int64]("campaign-clicks")
	sluice.Persist(g, codec.Int64())
	campaigns := sluice.Lookup(g, "ad-campaigns", codec.String())
	sluice.Input(g, "clicks", codec.String(), func(ctx *sluice.Context[int64], ad string) error {
		campaign, ok, err := campaigns.Get(ctx, ad)
		if err != nil {
			return err
		}
		if !ok {
			return nil // not an ad of any campaign
		}
		ctx.Logger().Info("click", "campaign", campaign)
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		return nil
	})

	tt, err := sluicetest.New(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = sluicetest.SeedLookup(tt, campaigns, "ad-7", "winter-sale")
	for _, ad := range []string{"ad-7", "ad-9", "ad-7"} {
		if err := sluicetest.Send(tt, "clicks", "user-1", ad); err != nil {
			fmt.Println(err)
			return
		}
	}
	n, _, _ := tt.Row("user-1")
	fmt.Println("user-1 clicked on campaign ads:", n)
	// Output:
	// user-1 clicked on campaign ads: 2
}

// A loopback sends a message to the task that owns another key's row:
// "alice follows bob" is read under alice's key and counted in bob's row.
func ExampleLoop() {
	g := sluice.DefineGroup[int64]("followers")
	sluice.Persist(g, codec.Int64())
	follow := sluice.Loop(g, codec.String(), func(ctx *sluice.Context[int64], follower string) error {
		n, _ := ctx.Value() // the row of the followed user
		ctx.SetValue(n + 1)
		return nil
	})
	sluice.Input(g, "follows", codec.String(), func(ctx *sluice.Context[int64], followed string) error {
		return follow.Loopback(ctx, followed, ctx.Key())
	})

	tt, err := sluicetest.New(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range [][2]string{{"alice", "bob"}, {"carol", "bob"}, {"bob", "alice"}} {
		if err := sluicetest.Send(tt, "follows", f[0], f[1]); err != nil {
			fmt.Println(err)
			return
		}
	}
	for _, user := range []string{"alice", "bob", "carol"} {
		n, _, _ := tt.Row(user)
		fmt.Printf("%s has %d followers\n", user, n)
	}
	// Output:
	// alice has 1 followers
	// bob has 2 followers
	// carol has 0 followers
}

// Under DeadLetter, a record whose handler fails leaves no effects and is
// written to the dead-letter topic with headers saying why; the records
// after it go on.
func ExampleDeadLetter() {
	g := sluice.DefineGroup[int64]("amounts")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "payments", codec.Int64(), func(ctx *sluice.Context[int64], cents int64) error {
		total, _ := ctx.Value()
		ctx.SetValue(total + cents) // undone if the record fails
		if cents < 0 {
			return errors.New("negative payment")
		}
		return nil
	})

	tt, err := sluicetest.New(g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("payments-dead"))))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range []string{"250", "-100", "oops", "50"} {
		if err := tt.SendRaw("payments", "acct-1", []byte(v)); err != nil {
			fmt.Println(err)
			return
		}
	}
	total, _, _ := tt.Row("acct-1")
	fmt.Println("total:", total)
	for _, d := range tt.DeadLetters() {
		kind, _ := d.Header(sluice.HeaderErrorKind)
		msg, _ := d.Header(sluice.HeaderError)
		fmt.Printf("dead letter %s %q (%s): %s\n", d.Key, d.Value, kind, msg)
	}
	fmt.Println("dead-lettered:", tt.Stats().DeadLettered)
	// Output:
	// total: 300
	// dead letter acct-1 "-100" (handler): group amounts: record payments/0@1 (key "acct-1"): negative payment
	// dead letter acct-1 "oops" (decode): group amounts: record payments/0@2 (key "acct-1"): decode payments/0@2: int64 codec: "oops" is not a decimal integer
	// dead-lettered: 2
}

// Exactly once, the rows and outputs of the records processed since the
// last commit become visible together with their offsets, or not at all:
// an aborted transaction leaves no trace, and its records are processed
// again.
func ExampleGuarantee_exactlyOnce() {
	g := sluice.DefineGroup[int64]("totals")
	sluice.Persist(g, codec.Int64())
	totals := sluice.Output(g, "totals", codec.Int64())
	sluice.Input(g, "amounts", codec.Int64(), func(ctx *sluice.Context[int64], n int64) error {
		total, _ := ctx.Value()
		ctx.SetValue(total + n)
		return totals.Emit(ctx, ctx.Key(), total+n)
	})

	tt, err := sluicetest.New(g,
		sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)),
		sluicetest.ManualCommit()) // the test ends each transaction
	if err != nil {
		fmt.Println(err)
		return
	}
	show := func(when string) {
		total, _, _ := tt.Row("k")
		msgs, _ := sluicetest.Output(tt, totals)
		var out []int64
		for _, m := range msgs {
			out = append(out, m.Value)
		}
		fmt.Printf("%s: row %d, output %v\n", when, total, out)
	}
	_ = sluicetest.Send(tt, "amounts", "k", int64(5))
	_ = tt.Commit()
	show("committed")

	_ = sluicetest.Send(tt, "amounts", "k", int64(7))
	_ = tt.Abort() // as a crash or a failed commit would
	show("aborted")

	_ = tt.Commit() // the record is read again from the committed offset
	show("processed again")
	fmt.Println("redone:", tt.Stats().Redone)
	// Output:
	// committed: row 5, output [5]
	// aborted: row 5, output [5]
	// processed again: row 12, output [5 12]
	// redone: 1
}

// Keys are placed on partitions as Kafka's Java client places them; data
// written by librdkafka's or Sarama's default partitioner needs their
// Hasher, given with Partitioning to every processor, view and emitter
// that shares the topics.
func ExampleHasher_Partition() {
	for _, h := range []sluice.Hasher{sluice.Murmur2, sluice.CRC32, sluice.FNV1a} {
		fmt.Printf("%s places user-3 on partition %d of 10\n", h, h.Partition("user-3", 10))
	}
	// Output:
	// murmur2 places user-3 on partition 7 of 10
	// crc32 places user-3 on partition 4 of 10
	// fnv1a places user-3 on partition 8 of 10
}
