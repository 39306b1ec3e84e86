//go:build unix

package pebble

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/sluice-io/sluice/store"
)

// BenchmarkBulkLoadTenStores loads 100,000 rows into each of ten stores of
// a new database at once, as a restore of ten partitions does, in calls of
// 4,096 changes, and reports the CPU time of the process per row besides
// the time: the loaders sort and write on goroutines of their own, and
// Pebble compacts their files in the background. The keys ("row-<i>")
// come in random order, as a changelog gives the keys of a table, or in
// the order of i, as the restore benchmark of package bench writes them,
// which places most keys next to the ones written before them.
func BenchmarkBulkLoadTenStores(b *testing.B) {
	b.Run("random", func(b *testing.B) { benchLoadTenStores(b, true) })
	b.Run("ordered", func(b *testing.B) { benchLoadTenStores(b, false) })
}

func benchLoadTenStores(b *testing.B, random bool) {
	const parts, rows, perCall = 10, 100_000, 4096
	rng := rand.New(rand.NewPCG(1, 2))
	var changes [parts][]store.Change
	for p := range parts {
		order := rng.Perm(rows)
		if !random {
			for i := range order {
				order[i] = i
			}
		}
		for _, i := range order {
			changes[p] = append(changes[p], store.Change{Key: fmt.Appendf(nil, "row-%d", i*parts+p), Value: fmt.Appendf(nil, "value-%010d", i)})
		}
	}
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for b.Loop() {
		build := Builder(b.TempDir())
		var wg sync.WaitGroup
		for p := range parts {
			s, err := build("table", int32(p))
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				defer func() {
					if err := s.Close(); err != nil {
						b.Error(err)
					}
				}()
				l, err := s.(store.BulkLoader).BulkLoad()
				if err != nil {
					b.Error(err)
					return
				}
				for i := 0; i < rows; i += perCall {
					if err := l.Apply(changes[p][i:min(i+perCall, rows)], int64(i+perCall)); err != nil {
						b.Error(err)
						break
					}
				}
				if err := l.Close(); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N*parts*rows), "cpu-ns/row")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*parts*rows), "ns/row")
}
