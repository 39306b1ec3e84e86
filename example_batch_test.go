package sluice_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// send writes key-value pairs to topic, in order, on one embedded broker.
func send(addrs []string, topic string, partitions int32, kvs ...string) {
	em, err := sluice.NewEmitter(topic, codec.String(), sluice.Brokers(addrs...), sluice.TopicDefaults(partitions, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer em.Close()
	for i := 0; i < len(kvs); i += 2 {
		if err := em.Emit(context.Background(), kvs[i], kvs[i+1]); err != nil {
			log.Fatal(err)
		}
	}
}

// Kasper's hello world: a batch handler that prints every record it gets.
func ExampleBatchProcessor_helloWorld() {
	b, err := broker.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	send(b.Addrs(), "hello", 1, "greeting", "hello world", "farewell", "goodbye world")

	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	bg := sluice.DefineBatchGroup[string, string]("hello-world")
	sluice.BatchInput(bg, "hello", codec.String(), codec.String())
	handled := 0
	sluice.HandleBatches(bg, func(_ sluice.BatchContext, recs []sluice.Record[string, string], _ sluice.Sender) error {
		for _, r := range recs {
			fmt.Printf("key: %s, value: %s, offset: %d, topic: %s, partition: %d\n", r.Key, r.Value, r.Offset, r.Topic, r.Partition)
		}
		if handled += len(recs); handled == 2 {
			stop() // a graceful stop: this batch is still committed
		}
		return nil
	})
	p, err := sluice.NewBatchProcessor(bg, sluice.Brokers(b.Addrs()...), sluice.Storage(memory.Builder()),
		sluice.BatchWait(100*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// key: greeting, value: hello world, offset: 0, topic: hello, partition: 0
	// key: farewell, value: goodbye world, offset: 1, topic: hello, partition: 0
}

// Kasper's multiple input topics: records of partition p of every input
// reach the handler of partition p together, so records with the same key
// meet, whichever topic they come from.
func ExampleBatchInput_multipleTopics() {
	b, err := broker.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	send(b.Addrs(), "impressions", 4, "ad-1", "shown", "ad-4", "shown", "ad-1", "shown", "ad-5", "shown")
	send(b.Addrs(), "ad-clicks", 4, "ad-1", "clicked", "ad-5", "clicked")

	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	bg := sluice.DefineBatchGroup[string, string]("ad-rates")
	sluice.BatchInput(bg, "impressions", codec.String(), codec.String())
	sluice.BatchInput(bg, "ad-clicks", codec.String(), codec.String())
	var (
		mu      sync.Mutex // partitions are handled concurrently
		lines   []string
		handled int
	)
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], _ sluice.Sender) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			lines = append(lines, fmt.Sprintf("partition %d: %s %s", ctx.Partition(), r.Key, r.Value))
		}
		if handled += len(recs); handled == 6 {
			stop()
		}
		return nil
	})
	p, err := sluice.NewBatchProcessor(bg, sluice.Brokers(b.Addrs()...), sluice.Storage(memory.Builder()),
		sluice.BatchWait(100*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// partition 0: ad-4 shown
	// partition 1: ad-1 clicked
	// partition 1: ad-1 shown
	// partition 1: ad-1 shown
	// partition 3: ad-5 clicked
	// partition 3: ad-5 shown
}
