package sluice_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// Sessions by event time: every click extends its user's session, which
// ends after 30 minutes without clicks. The timer of a user is set again
// with each click, so only the last one fires, once stream time (the
// latest click time of the partition) passes it: here carol's click, on
// the same partition (the topic has one), ends alice's and bob's sessions.
func ExampleOnTimer_sessions() {
	b, err := broker.Start(context.Background(), broker.AllowAutoTopicCreation(), broker.Partitions(1))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	for _, c := range []struct {
		user string
		min  int
	}{{"alice", 0}, {"alice", 1}, {"bob", 5}, {"alice", 2}, {"carol", 40}} {
		r := &kgo.Record{Topic: "clicks", Key: []byte(c.user), Value: []byte("click"), Timestamp: start.Add(time.Duration(c.min) * time.Minute)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			log.Fatal(err)
		}
	}

	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	g := sluice.DefineGroup[int64]("sessions")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "clicks", codec.Bytes(), func(ctx *sluice.Context[int64], _ []byte) error {
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		ctx.SetTimer("session-end", ctx.Timestamp().Add(30*time.Minute))
		return nil
	})
	ended := 0
	sluice.OnTimer(g, func(ctx *sluice.Context[int64], t sluice.Timer) error {
		n, _ := ctx.Value()
		fmt.Printf("session of %s ended at %s after %d clicks\n", ctx.Key(), t.Time.UTC().Format("15:04"), n)
		ctx.Delete()
		if ended++; ended == 2 {
			stop() // a graceful stop: what the timers did is committed
		}
		return nil
	})
	p, err := sluice.NewProcessor(g, sluice.Brokers(b.Addrs()...), sluice.Storage(memory.Builder()))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// session of alice ended at 12:32 after 3 clicks
	// session of bob ended at 12:35 after 1 clicks
}
