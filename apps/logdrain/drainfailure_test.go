package logdrain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/broker"
)

// loadClients POST bodies of linesPerBody router lines, each with its own
// request id, until stopped, and remember which lines were acknowledged.
type loadClients struct {
	mu       sync.Mutex
	acked    map[string]bool
	ok       atomic.Int64 // 204s
	refused  atomic.Int64 // 503s
	stop     chan struct{}
	wg       sync.WaitGroup
	failures chan error
}

const linesPerBody = 10

func startLoad(base string, clients int) *loadClients {
	l := &loadClients{acked: map[string]bool{}, stop: make(chan struct{}), failures: make(chan error, clients)}
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				ids := make([]string, linesPerBody)
				msgs := make([]string, linesPerBody)
				for i := range ids {
					ids[i] = fmt.Sprintf("c%d-b%d-l%d", c, n, i)
					msgs[i] = routerMsg(fmt.Sprintf("/load/%d", i), 1, 10, 200, ids[i])
				}
				a, err := tryPost(base, request{body: body(msgs...), headers: msgCount(linesPerBody)})
				switch {
				case err != nil:
					// The drain is up throughout: a transport error is a failure.
					l.failures <- err
					return
				case a.status == http.StatusNoContent:
					l.mu.Lock()
					for _, id := range ids {
						l.acked[id] = true
					}
					l.mu.Unlock()
					l.ok.Add(1)
				case a.status == http.StatusServiceUnavailable:
					if a.header.Get("Retry-After") == "" {
						l.failures <- fmt.Errorf("503 without Retry-After")
						return
					}
					l.refused.Add(1)
				default:
					l.failures <- fmt.Errorf("status %d %q", a.status, a.body)
					return
				}
			}
		}()
	}
	return l
}

func (l *loadClients) halt(t *testing.T) map[string]bool {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	select {
	case err := <-l.failures:
		t.Fatalf("load client: %v", err)
	default:
	}
	return l.acked
}

// TestDrainAnswers503WhileKafkaIsDownLosesNoAcknowledgedLineAndRecovers
// stops the broker under load and starts it again on the same address and
// data directory.
func TestDrainAnswers503WhileKafkaIsDownLosesNoAcknowledgedLineAndRecovers(t *testing.T) {
	dir := t.TempDir()
	b1 := startBroker(t, broker.DataDir(dir))
	addr := b1.Addrs()[0]
	brokers := []string{addr}
	url, d := startDrain(t, brokers, logdrain.DrainConfig{DeliveryTimeout: time.Second, RetryAfter: time.Second})

	load := startLoad(url, 4)
	waitFor(t, "bodies acknowledged before the broker stops", func() bool { return load.ok.Load() >= 20 })
	if err := b1.Close(); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
	waitFor(t, "503s while the broker is down", func() bool { return load.refused.Load() >= 4 })
	health, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("healthz %d while the broker is down, want 503", health.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b2, err := broker.Start(ctx, broker.DataDir(dir), broker.Addr(addr))
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = b2.Close() })
	okAtRestart := load.ok.Load()
	waitFor(t, "bodies acknowledged after the broker is back", func() bool { return load.ok.Load() >= okAtRestart+20 })
	acked := load.halt(t)
	t.Logf("%d bodies acknowledged, %d refused with 503, %d lines acknowledged", load.ok.Load(), load.refused.Load(), len(acked))

	inKafka := endOffsets(t, brokers, logdrain.RouterTopic)
	if inKafka < int64(len(acked)) {
		t.Fatalf("%s holds %d records, fewer than the %d lines acknowledged", logdrain.RouterTopic, inKafka, len(acked))
	}
	missing := make(map[string]bool, len(acked))
	for id := range acked {
		missing[id] = true
	}
	for _, r := range consume(t, brokers, logdrain.RouterTopic, int(inKafka)) {
		var rec logdrain.Record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			t.Fatalf("record %s: %v", r.Value, err)
		}
		delete(missing, rec.Router.RequestID)
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged lines are not in %s", len(missing), logdrain.RouterTopic)
	}
	if s := d.Stats(); s.Requests[http.StatusServiceUnavailable] != load.refused.Load() {
		t.Errorf("drain counted %d 503s, clients saw %d", s.Requests[http.StatusServiceUnavailable], load.refused.Load())
	}
}

func TestDrainClosesWithinTheDeliveryWaitWhileKafkaIsDown(t *testing.T) {
	b := startBroker(t)
	url, d := startDrain(t, b.Addrs(), logdrain.DrainConfig{DeliveryTimeout: time.Second, RetryAfter: time.Second})
	lines := body(routerMsg("/a", 1, 10, 200, "r1"), "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed")
	if a := post(t, url, request{body: lines}); a.status != http.StatusNoContent {
		t.Fatalf("before the broker stops: %d %q", a.status, a.body)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
	if a := post(t, url, request{body: lines}); a.status != http.StatusServiceUnavailable {
		t.Fatalf("while the broker is down: %d %q, want 503", a.status, a.body)
	}
	// The records of the 503 are still in the emitters: Close gives them
	// up after the delivery wait (2s here), for all emitters at once.
	start := time.Now()
	_ = d.Close()
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("Close took %s with Kafka down, want about the delivery wait", took)
	}
}
