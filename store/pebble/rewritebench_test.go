//go:build unix

package pebble

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-io/sluice/store"
)

// BenchmarkRewriteTenStores writes the same rows again and again, as a
// processor's tasks write a table whose keys keep coming round: ten stores
// of one Builder's database, 1,000 keys each, every Apply a new value for
// each of its store's keys in a fixed shuffled order (one store write of a
// task that changed them all since the last, in the order its records came).
// It reports the process's CPU time per change besides the
// time, since Pebble flushes and compacts on goroutines of its own, for
// memtables of several sizes: a memtable keeps every version of a row until
// it is flushed, so a larger one is a larger skiplist to insert into.
func BenchmarkRewriteTenStores(b *testing.B) {
	for _, mib := range []uint64{4, 8, 16, 32} {
		b.Run(fmt.Sprintf("memtable=%dMiB", mib), func(b *testing.B) { benchRewriteTenStores(b, mib<<20) })
	}
}

func benchRewriteTenStores(b *testing.B, memtable uint64) {
	const parts, keys = 10, 1000
	build := Builder(b.TempDir(), MemTableSize(memtable))
	var stores [parts]store.Store
	var changes [parts][]store.Change
	for p := range parts {
		s, err := build("table", int32(p))
		if err != nil {
			b.Fatal(err)
		}
		stores[p] = s
		for k := range keys {
			changes[p] = append(changes[p], store.Change{Key: fmt.Appendf(nil, "key-%d", k*parts+p), Value: make([]byte, 8)})
		}
	}
	for p := range parts {
		rand.New(rand.NewPCG(1, uint64(p))).Shuffle(keys, func(i, j int) { changes[p][i], changes[p][j] = changes[p][j], changes[p][i] })
	}
	defer func() {
		for _, s := range stores {
			if err := s.Close(); err != nil {
				b.Error(err)
			}
		}
	}()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	offset := int64(0)
	for b.Loop() {
		for p, s := range stores {
			for _, c := range changes[p] {
				// A count, as the count group's rows are.
				c.Value[7]++
				if c.Value[7] == 0 {
					c.Value[6]++
				}
			}
			if err := s.Apply(changes[p], offset); err != nil {
				b.Fatal(err)
			}
		}
		offset++
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*parts*keys), "cpu-ns/change")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*parts*keys), "ns/change")
}
