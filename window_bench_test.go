package sluice

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
	"github.com/sluice-io/sluice/store/pebble"
)

// BenchmarkEngineWindowedCount folds records into tumbling windows of one
// partition engine, without Kafka: one partition's share of the bench
// package's BenchmarkWindowedCount (5,000 keys, each about twice in each
// 10 s window), in batches of 1,000 that are written and applied, each
// window's final count emitted. It measures what the engine costs a
// record, apart from the client and the broker.
func BenchmarkEngineWindowedCount(b *testing.B) {
	benchmarkEngineWindowedCount(b, &applyLog{Store: memory.New()}, "", false)
}

// BenchmarkEngineWindowedCountPebble is BenchmarkEngineWindowedCount as a
// Kafka task drives the engine: the rows in Pebble, the windows in a
// changelog topic of their own, the changelog records' slabs reused once
// they are written.
func BenchmarkEngineWindowedCountPebble(b *testing.B) {
	st, err := pebble.Builder(b.TempDir())("bench-table", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchmarkEngineWindowedCount(b, st, "bench-windows", true)
}

func benchmarkEngineWindowedCount(b *testing.B, st store.Store, windows string, reuse bool) {
	const (
		keys  = 5000
		batch = 1000
	)
	g := DefineGroup[struct{}]("bench")
	out := Output(g, "out", codec.Bytes())
	counts := Aggregate(g, "counts", Tumbling(10*time.Second), Count[[]byte](), func(ctx *Context[struct{}], r WindowResult[int64]) error {
		return out.Emit(ctx, r.Key, strconv.AppendInt(nil, r.Value, 10))
	})
	WindowedInput(g, "in", codec.Bytes(), counts)
	p, err := NewProcessor(g, Storage(memory.Builder()))
	if err != nil {
		b.Fatal(err)
	}
	var m taskMetrics
	m.init(p.metrics, 0, g.inputTopics())
	e := newEngine(p.engineConfig(), enginePartition{partition: 0, table: st, windows: windows, metrics: &m, reuseChangelog: reuse})
	// 2 records per key and window: a record every 1 ms.
	recs := make([]*kgo.Record, batch)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "in"}
	}
	epoch := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		for i, r := range recs {
			j := n + i
			r.Key = strconv.AppendInt(r.Key[:0], int64(j%keys), 10)
			r.Value = r.Key
			r.Offset = int64(j)
			r.Timestamp = epoch.Add(time.Duration(j) * time.Millisecond)
		}
		if done, err := e.process(context.Background(), recs); err != nil || done != len(recs) {
			b.Fatalf("process = %d, %v", done, err)
		}
		clear(e.effects())
		cl := e.endBatch()
		clear(cl) // as the client lets go of them once acknowledged
		if reuse {
			e.changelogAcked()
		}
		var err error
		if windows != "" {
			err = e.appliedAt(int64(n+batch), int64(n+batch))
		} else {
			err = e.applied(int64(n + batch))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
