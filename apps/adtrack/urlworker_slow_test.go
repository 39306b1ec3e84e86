package adtrack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
)

// samePartitionNetwork returns a network name whose requests land on the
// partition of network's among partitions.
func samePartitionNetwork(t *testing.T, network string, partitions int32) string {
	t.Helper()
	want := sluice.Murmur2.Partition(network, partitions)
	for i := range 1000 {
		name := fmt.Sprint("fast-", i)
		if sluice.Murmur2.Partition(name, partitions) == want {
			return name
		}
	}
	t.Fatalf("no network name found on the partition of %s", network)
	return ""
}

// A network that holds every request it gets, with more of them waiting
// than the worker sends it at once, does not delay another network whose
// requests are on the same partition of RequestsTopic and come after them:
// the other network is told, and its result written, while the slow one's
// requests are all still in flight or waiting.
func TestURLWorkerSlowNetworkDoesNotDelayANetworkOnItsPartition(t *testing.T) {
	const partitions = 10
	brokers := startBroker(t)
	slow := newHeld(t, http.StatusOK, false)
	fast := newHeld(t, http.StatusOK, true)
	fastNet := samePartitionNetwork(t, "slow", partitions)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, RequestsTopic); err != nil {
		t.Fatal(err)
	}
	record := func(network, url, id string) *kgo.Record {
		b, err := json.Marshal(Request{ID: id, PostbackID: "pb-" + network, Network: network, Method: http.MethodGet, URL: url})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: RequestsTopic, Key: []byte(network), Value: b}
	}
	var recs []*kgo.Record
	for i := range 2 * URLWorkerPerNetwork {
		recs = append(recs, record("slow", fmt.Sprint(slow.URL, "/pix?i=", i), fmt.Sprint("slow-", i)))
	}
	recs = append(recs, record(fastNet, fast.URL+"/pix", "fast-0"))
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	p, err := sluice.NewProcessor(DefineURLWorker(scenarioSender()).Group, sluice.Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		slow.release()
		if err := <-done; err != nil {
			t.Errorf("the worker stopped with %v", err)
		}
	}()

	waitFor(t, "the other network's request, while the slow one holds its own", func() bool { return len(fast.requests()) == 1 })
	res := readResult(t, brokers, "pb-"+fastNet)
	if res.Status != StatusOK || res.Request.ID != "fast-0" {
		t.Fatalf("the other network's result: %+v, want ok for fast-0", res)
	}
	waitFor(t, "the slow network's requests in flight", func() bool { return len(slow.requests()) >= URLWorkerPerNetwork })
	if n := len(slow.requests()); n != URLWorkerPerNetwork {
		t.Errorf("the slow network got %d requests at once, want %d", n, URLWorkerPerNetwork)
	}
}

// readResult reads ResultsTopic from the start until a result of postback
// pb.
func readResult(t *testing.T, brokers []string, pb string) Result {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(ResultsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no result of %s within 60s", pb)
		}
		var found *Result
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := ParseEvent(r.Value)
			if err != nil {
				t.Fatalf("result %q: %v", r.Value, err)
			}
			res, err := ParseResult(ev)
			if err != nil {
				t.Fatalf("result %q: %v", r.Value, err)
			}
			if found == nil && res.Request.PostbackID == pb {
				found = &res
			}
		})
		if found != nil {
			return *found
		}
	}
}
