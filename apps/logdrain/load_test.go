package logdrain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/apps/logdrain"
)

// loadWorkers is how many clients post at once in BenchmarkDrainAgainstRawClient.
const loadWorkers = 8

// loadBody is a Logplex body of 100 router lines of 10 paths, and the
// Records the drain makes of them.
func loadBody(b *testing.B) ([]byte, [][]byte, []string) {
	b.Helper()
	var msgs []string
	for i := range 100 {
		msgs = append(msgs, routerMsg(fmt.Sprintf("/load/%d", i%10), i%7, 10+i, 200, fmt.Sprintf("req-%d", i)))
	}
	body := body(msgs...)
	var values [][]byte
	var keys []string
	for _, f := range logdrain.SplitFrames(body) {
		m, err := logdrain.ParseMessage(f.Msg)
		if err != nil {
			b.Fatal(err)
		}
		r, err := logdrain.ParseRouterLine(m.Msg)
		if err != nil {
			b.Fatal(err)
		}
		v, err := json.Marshal(logdrain.NewRecord(&m, &r))
		if err != nil {
			b.Fatal(err)
		}
		values, keys = append(values, v), append(keys, r.Path)
	}
	return body, values, keys
}

// BenchmarkDrainAgainstRawClient sends b.N bodies of 100 router lines with
// loadWorkers clients at once: through the drain over loopback HTTP, and
// with the raw franz-go client producing the same JSON records and waiting
// for their acknowledgement, on an embedded broker each. Both report
// lines/s; after both, the ratio drain/raw is logged. Every acknowledged
// line is checked to be in Kafka.
func BenchmarkDrainAgainstRawClient(b *testing.B) {
	in, values, keys := loadBody(b)
	rates := map[string]float64{}
	b.Run("raw", func(b *testing.B) {
		br := startBroker(b)
		// As many partitions as the drain's topics have.
		resp, err := kadm.NewClient(newClient(b, br.Addrs())).CreateTopic(context.Background(), testPartitions, 1, nil, "router-raw")
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			b.Fatalf("create router-raw: %v", err)
		}
		cl := newClient(b, br.Addrs(), kgo.DefaultProduceTopic("router-raw"))
		acked := run(b, func() error {
			var wg sync.WaitGroup
			var first atomic.Value
			for i, v := range values {
				wg.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Key: []byte(keys[i]), Value: v}, func(_ *kgo.Record, err error) {
					if err != nil {
						first.CompareAndSwap(nil, err)
					}
					wg.Done()
				})
			}
			wg.Wait()
			if err, _ := first.Load().(error); err != nil {
				return err
			}
			return nil
		})
		rates["raw"] = rate(b, acked)
		checkHeld(b, br.Addrs(), "router-raw", acked)
	})
	b.Run("drain", func(b *testing.B) {
		br := startBroker(b)
		url, _ := startDrain(b, br.Addrs(), logdrain.DrainConfig{})
		acked := run(b, func() error {
			a, err := tryPost(url, request{body: in, headers: msgCount(len(values))})
			if err != nil {
				return err
			}
			if a.status != http.StatusNoContent {
				return fmt.Errorf("status %d %q", a.status, a.body)
			}
			return nil
		})
		rates["drain"] = rate(b, acked)
		checkHeld(b, br.Addrs(), logdrain.RouterTopic, acked)
	})
	if raw, drain := rates["raw"], rates["drain"]; raw > 0 && drain > 0 {
		b.Logf("100-line bodies, %d clients: raw %.0f lines/s, drain %.0f lines/s (%.0f bodies/s), ratio %.2f",
			loadWorkers, raw, drain, drain/100, drain/raw)
	}
}

// run sends b.N bodies with send, from loadWorkers goroutines, and returns
// how many lines were acknowledged.
func run(b *testing.B, send func() error) int64 {
	b.Helper()
	var (
		next  atomic.Int64
		acked atomic.Int64
		wg    sync.WaitGroup
		fail  atomic.Value
	)
	b.ResetTimer()
	for range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := send(); err != nil {
					fail.CompareAndSwap(nil, err)
					return
				}
				acked.Add(100)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := fail.Load().(error); err != nil {
		b.Fatal(err)
	}
	return acked.Load()
}

func rate(b *testing.B, lines int64) float64 {
	r := float64(lines) / b.Elapsed().Seconds()
	b.ReportMetric(r, "lines/s")
	return r
}

// checkHeld fails b unless topic holds at least the acknowledged lines.
func checkHeld(b *testing.B, brokers []string, topic string, acked int64) {
	b.Helper()
	if n := endOffsets(b, brokers, topic); n < acked {
		b.Fatalf("%s holds %d records, fewer than the %d lines acknowledged", topic, n, acked)
	}
}
