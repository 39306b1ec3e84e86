package bench

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
)

// BenchmarkCountGroupMetrics is BenchmarkCountGroup with the sluice side
// exporting its metrics (sluice.Metrics) to a registry that is gathered
// every 100ms, far more often than Prometheus would scrape it: the ratio
// next to BenchmarkCountGroup's is what the metrics cost.
func BenchmarkCountGroupMetrics(b *testing.B) {
	sides := func(tb testing.TB) map[string]countSide {
		all := countSides(tb)
		all["sluice"] = func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
			reg := prometheus.NewRegistry()
			gctx, stopGathering := context.WithCancel(ctx)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-gctx.Done():
						return
					case <-tick.C:
					}
					if _, err := reg.Gather(); err != nil {
						tb.Errorf("gather: %v", err)
						return
					}
				}
			}()
			stop, err := sluiceCount(ctx, br.Addrs(), tb.TempDir(), n, sluice.Metrics(reg))
			stopGathering()
			if err != nil {
				return nil, err
			}
			return func() {
				if err := stop(); err != nil {
					tb.Errorf("sluice: stop: %v", err)
				}
			}, nil
		}
		return all
	}
	benchmarkCount(b, sides, func(b *testing.B, br *broker.Broker, name string, n int) {
		expectRecords(b, br, outputOf(name), n)
	})
}
