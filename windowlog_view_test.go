package sluice_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

func TestWindowViewOfAWindowsTopicDropsTheWindowsItsGroupPurged(t *testing.T) {
	const keys = 4
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(2))
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation())
	produceAt := func(sec int64) {
		t.Helper()
		for k := range keys {
			r := &kgo.Record{Topic: "wclicks", Key: fmt.Appendf(nil, "k%d", k), Value: []byte("click"), Timestamp: time.Unix(sec, 0)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	g := windowCounts()
	runProcessor(t, g, processorOpts(b, 2, t.TempDir())...)
	produceAt(1)
	produceAt(2)
	produceAt(11)
	waitFor(t, 30*time.Second, func() error {
		_, _, err := kafkaCounts(b, g.WindowsTopic())
		return err
	})
	v, err := sluice.NewWindowView(g.WindowsTopic(), "n", codec.Int64(), viewOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, v.Run)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	windowsOf := func(key string) map[int64]int64 {
		t.Helper()
		got := make(map[int64]int64)
		if err := v.Windows(key, time.Time{}, time.Time{}, func(w sluice.Window, n int64) bool {
			got[w.Start.Unix()] = n
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	expect := func(want map[int64]int64) {
		t.Helper()
		waitFor(t, 30*time.Second, func() error {
			for k := range keys {
				key := fmt.Sprintf("k%d", k)
				if got := windowsOf(key); !maps.Equal(got, want) {
					return fmt.Errorf("windows of %s by start: %v, want %v", key, got, want)
				}
			}
			return nil
		})
	}
	// [0,10) is closed, kept until 20s.
	expect(map[int64]int64{0: 2, 10: 1})
	produceAt(21)
	expect(map[int64]int64{10: 1, 20: 1})
}

// kafkaCounts returns how many partitions topic has and how many records
// they hold, or an error while it has none.
func kafkaCounts(b *broker.Broker, topic string) (partitions int, records int64, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	ends.Each(func(o kadm.ListedOffset) {
		partitions++
		records += o.Offset
	})
	if records == 0 {
		return partitions, 0, fmt.Errorf("%s holds no record", topic)
	}
	return partitions, records, nil
}
