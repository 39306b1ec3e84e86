package broker_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
)

// A broker in memory for the length of a test: any Kafka client talks to
// it, here franz-go's admin client and producer and a consumer.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx) // a free port on 127.0.0.1
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("greetings"))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "greetings"); err != nil {
		log.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "greetings", Key: []byte("k"), Value: []byte("hello")}).FirstErr(); err != nil {
		log.Fatal(err)
	}
	for read := 0; read < 1; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			log.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			fmt.Printf("%s/%d@%d %s=%s\n", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
			read++
		})
	}
	// Output:
	// greetings/0@0 k=hello
}
