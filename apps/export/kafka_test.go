package export

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// committedEvents reads topic as a read-committed consumer, in the
// background, counting each event id it sees.
type committedEvents struct {
	mu     sync.Mutex
	seen   map[string]int
	values map[string]int64
	ends   map[int32]bool
	bad    []string
}

func readCommitted(t *testing.T, brokers []string, topic string) *committedEvents {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ce := &committedEvents{seen: map[string]int{}, values: map[string]int64{}, ends: map[int32]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				ce.mu.Lock()
				defer ce.mu.Unlock()
				if string(r.Key) == "end" {
					ce.ends[r.Partition] = true
					return
				}
				var ev Event
				if err := json.Unmarshal(r.Value, &ev); err != nil || ev.ID != string(r.Key) {
					ce.bad = append(ce.bad, fmt.Sprintf("%q: %q (%v)", r.Key, r.Value, err))
					return
				}
				ce.seen[ev.ID]++
				ce.values[ev.ID] = ev.Value
			})
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return ce
}

func (ce *committedEvents) count() int {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	return len(ce.seen)
}

func (ce *committedEvents) endsSeen() int {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	return len(ce.ends)
}

func TestExportWritesEveryEventOnceToAKafkaTopicExactlyOnceAcrossAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts export processes")
	}
	const topic = "stats-events"
	b := startTestBroker(t)
	cl := newInputClient(t, b)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	u := genUpdates(rand.New(rand.NewPCG(31, 32)), start, time.Second, 12)
	dir := t.TempDir()
	log := filepath.Join(dir, "export.log")
	defer func() {
		if t.Failed() {
			data, _ := os.ReadFile(log)
			t.Logf("export processes' log:\n%s", data)
		}
	}()
	produceBuckets(t, cl, u)
	ce := readCommitted(t, b.Addrs(), topic)
	env := killEnvTopic + "=" + topic

	p := startExportProcess(t, b.Addrs()[0], "", filepath.Join(dir, "state"), log, env)
	waitFor(t, 120*time.Second, "a quarter of the events committed", func() bool { return ce.count() >= len(u.latest)/4 })
	p.kill()
	p = startExportProcess(t, b.Addrs()[0], "", filepath.Join(dir, "state"), log, env)
	waitFor(t, 180*time.Second, "every event committed", func() bool { return ce.count() >= len(u.latest) })
	p.stop()

	// An end mark after the last transaction in every partition: once the
	// consumer has read them all, it has read everything committed.
	var ends []*kgo.Record
	for part := range int32(e2ePartitions) {
		ends = append(ends, &kgo.Record{Topic: topic, Partition: part, Key: []byte("end")})
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	if err := pcl.ProduceSync(context.Background(), ends...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the end marks", func() bool { return ce.endsSeen() == e2ePartitions })

	ce.mu.Lock()
	defer ce.mu.Unlock()
	if len(ce.bad) > 0 {
		t.Fatalf("records that are not events: %v", ce.bad)
	}
	for id, want := range u.latest {
		if n := ce.seen[id]; n != 1 {
			t.Errorf("event %s committed %d times, want once", id, n)
		}
		if v := ce.values[id]; v != want {
			t.Errorf("event %s: value %d, the latest is %d", id, v, want)
		}
	}
	if len(ce.seen) != len(u.latest) {
		t.Errorf("%d events committed, want %d", len(ce.seen), len(u.latest))
	}
}
