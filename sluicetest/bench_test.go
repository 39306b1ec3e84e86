package sluicetest_test

import (
	"fmt"
	"testing"

	"github.com/sluice-io/sluice/apps/clicks"
	"github.com/sluice-io/sluice/sluicetest"
)

// BenchmarkClickCounter runs the click counter's group through the tester:
// clicks of 1000 users, committed every 1000 records (a batch) or after
// every record.
func BenchmarkClickCounter(b *testing.B) {
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprint("user-", i)
	}
	click := []byte("click")
	for _, every := range []int{1000, 1} {
		b.Run(fmt.Sprintf("commit-every-%d", every), func(b *testing.B) {
			tt, err := sluicetest.New(clicks.DefineGroup(), sluicetest.ManualCommit())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := tt.SendRaw(clicks.Topic, users[i%len(users)], click); err != nil {
					b.Fatal(err)
				}
				if (i+1)%every == 0 {
					if err := tt.Commit(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := tt.Commit(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if s := tt.Stats(); s.Consumed != int64(b.N) {
				b.Fatalf("consumed %d records, want %d", s.Consumed, b.N)
			}
		})
	}
}
