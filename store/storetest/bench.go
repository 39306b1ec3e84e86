package storetest

import (
	"fmt"
	"testing"

	"github.com/sluice-io/sluice/store"
)

// BenchApply measures Apply of batches of 1000 changes, each a 20-byte key
// and a 16-byte value, over a key space of 100,000 keys so that batches mix
// inserts and overwrites. The store comes from open, and BenchApply closes it.
func BenchApply(b *testing.B, open func(b *testing.B) store.Store) {
	const (
		batchSize = 1000
		keySpace  = 100_000
		batches   = 64
	)
	// A fixed multiplicative walk over the key space spreads each batch's
	// keys without a random source, so runs are comparable.
	var pre [batches][]store.Change
	n := 0
	for i := range pre {
		pre[i] = make([]store.Change, batchSize)
		for j := range pre[i] {
			k := (n * 7919) % keySpace
			n++
			pre[i][j] = store.Change{
				Key:   fmt.Appendf(nil, "key-%016d", k),
				Value: fmt.Appendf(nil, "value-%010d", n),
			}
		}
	}
	s := open(b)
	defer func() {
		if err := s.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
	}()
	b.SetBytes(int64(batchSize * (20 + 16)))
	b.ReportAllocs()
	offset := int64(0)
	for b.Loop() {
		if err := s.Apply(pre[offset%batches], offset); err != nil {
			b.Fatalf("apply: %v", err)
		}
		offset++
	}
}

// BenchLoad measures a bulk load of 100,000 changes, each a key of 10 to 11
// bytes with a common prefix and a 16-byte value, as a restore of a table
// gives them, in calls of 1,000, into a store from open, through its
// store.BulkLoader, or through Apply for a store that is none. The time
// includes closing the store, which makes what it wrote durable, and not
// opening it.
func BenchLoad(b *testing.B, open func(b *testing.B) store.Store) {
	const rows, perCall = 100_000, 1000
	calls := make([][]store.Change, rows/perCall)
	for i := range rows {
		calls[i/perCall] = append(calls[i/perCall], store.Change{
			Key:   fmt.Appendf(nil, "row-%d", (i*7919)%rows),
			Value: fmt.Appendf(nil, "value-%010d", i),
		})
	}
	b.SetBytes(rows * (10 + 16))
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		s := open(b)
		b.StartTimer()
		var l store.Loader = applier{s}
		if bl, ok := s.(store.BulkLoader); ok {
			var err error
			if l, err = bl.BulkLoad(); err != nil {
				b.Fatal(err)
			}
		}
		for i, c := range calls {
			if err := l.Apply(c, int64((i+1)*perCall)); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

// applier is a store.Loader that applies each call.
type applier struct{ store.Store }

func (a applier) Close() error { return nil }
