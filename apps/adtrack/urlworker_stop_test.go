package adtrack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
)

// A URL worker told to stop with a backlog of one network's requests starts
// none once it is stopping, and cuts short those in flight: the network saw
// only the requests in hand, as many as the worker sends one network at
// once, and the next run sends every request, so that a slow network does
// not hold up the stop by its whole backlog.
func TestURLWorkerStoppingStartsNoRequestAfterThoseInHand(t *testing.T) {
	brokers := startBroker(t)
	net := newHeld(t, http.StatusOK, false)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 10, 1, nil, RequestsTopic); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var recs []*kgo.Record
	for i := range n {
		b, err := json.Marshal(Request{ID: fmt.Sprint("r", i), PostbackID: "pb", Network: "slow", Method: "GET", URL: net.URL + fmt.Sprint("/pix?i=", i)})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: RequestsTopic, Key: []byte("slow"), Value: b})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context) <-chan error {
		p, err := sluice.NewProcessor(DefineURLWorker(scenarioSender()).Group, sluice.Brokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		return done
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(ctx)
	waitFor(t, "the requests one network gets at once", func() bool { return len(net.requests()) >= URLWorkerPerNetwork })
	cancel()
	net.release()
	if err := <-done; err != nil {
		t.Fatalf("the worker stopped with %v", err)
	}
	if got := len(net.requests()); got != URLWorkerPerNetwork {
		t.Fatalf("the network saw %d requests by the stop, want the %d in hand", got, URLWorkerPerNetwork)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done = run(ctx)
	waitFor(t, "the rest of the requests", func() bool { return distinctIDs(net.requests(), "/pix?") == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("the worker stopped with %v", err)
	}
}
