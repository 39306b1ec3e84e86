package sluice_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// A view is a local copy of a whole table, here the one a click-counting
// processor keeps, queried by key, by range and over HTTP. Everything runs
// in this process, on the embedded broker.
func ExampleNewView() {
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	b, err := broker.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	kafka := sluice.Brokers(b.Addrs()...)

	g := sluice.DefineGroup[int64]("counter")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "clicks", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		return nil
	})
	p, err := sluice.NewProcessor(g, kafka, sluice.Storage(memory.Builder()))
	if err != nil {
		log.Fatal(err)
	}
	send(b.Addrs(), "clicks", 10, "user-1", "click", "user-2", "click", "user-1", "click", "user-1", "click")

	v, err := sluice.NewView(g.TableTopic(), codec.Int64(), kafka)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- p.Run(ctx) }()
	go func() { done <- v.Run(ctx) }()
	if err := v.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	// The view follows the table as the processor writes it.
	for n, _ := v.Get("user-1"); n < 3; n, _ = v.Get("user-1") {
		select {
		case <-ctx.Done():
			log.Fatal("the view did not see user-1's third click")
		case <-time.After(10 * time.Millisecond):
		}
	}

	n, err := v.Get("user-1")
	fmt.Println("user-1:", n, err)
	_, err = v.Get("nobody")
	fmt.Println("nobody:", err)
	_ = v.Iterate("user-0", "user-9", func(key string, n int64) bool {
		fmt.Println("iterate:", key, n)
		return true
	})
	rec := httptest.NewRecorder()
	v.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/user-2", nil))
	fmt.Println("GET /user-2:", rec.Code, strings.TrimSpace(rec.Body.String()))

	stop() // both stop gracefully
	fmt.Println(<-done, <-done)
	// Output:
	// user-1: 3 <nil>
	// nobody: sluice: key not found
	// iterate: user-1 3
	// iterate: user-2 1
	// GET /user-2: 200 1
	// <nil> <nil>
}

// An emitter writes typed records to a topic, placing keys as Kafka's Java
// client does: synchronously, or batched by the client with a callback.
func ExampleNewEmitter() {
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	b, err := broker.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	em, err := sluice.NewEmitter("greetings", codec.String(), sluice.Brokers(b.Addrs()...),
		sluice.TopicDefaults(4, 1)) // if the topic does not exist: 4 partitions
	if err != nil {
		log.Fatal(err)
	}
	if err := em.Emit(ctx, "alice", "hello"); err != nil { // returns once acknowledged
		log.Fatal(err)
	}
	for _, name := range []string{"bob", "carol"} {
		em.EmitAsync(name, "hi", func(err error) {
			if err != nil {
				log.Print(err)
			}
		})
	}
	if err := em.Flush(ctx); err != nil { // waits for what was emitted before
		log.Fatal(err)
	}
	if err := em.Close(); err != nil {
		log.Fatal(err)
	}

	// Read the topic back with a plain Kafka client.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("greetings"))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	var lines []string
	for len(lines) < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			log.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			lines = append(lines, fmt.Sprintf("partition %d: %s %s", r.Partition, r.Key, r.Value))
		})
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Println("alice belongs on partition", sluice.Murmur2.Partition("alice", em.Partitions()))
	// Output:
	// partition 1: alice hello
	// partition 2: bob hi
	// partition 2: carol hi
	// alice belongs on partition 1
}
