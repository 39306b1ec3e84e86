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
