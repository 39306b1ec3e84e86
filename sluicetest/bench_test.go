package sluicetest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/clicks"
	"github.com/sluice-io/sluice/codec"
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

// BenchmarkTumblingCounts counts the records of 1000 keys in tumbling 10s
// windows through the tester, 1000 records per second of event time, so a
// key's window holds 10 records and emits its result and is purged when
// it closes; committed every 1000 records. Beside it, the same records
// counted in a persisted row, for the work a window adds to a record.
func BenchmarkTumblingCounts(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	for _, windowed := range []bool{true, false} {
		name := "windowed"
		g, _ := windowGroup(sluice.Tumbling(10 * time.Second))
		if !windowed {
			name = "row"
			g = sluice.DefineGroup[string]("rows")
			sluice.Persist(g, codec.String())
			sluice.Input(g, "in", codec.String(), func(ctx *sluice.Context[string], v string) error {
				n, _ := ctx.Value()
				ctx.SetValue(n + "x")
				if len(n) > 8 {
					ctx.SetValue("")
				}
				return nil
			})
		}
		b.Run(name, func(b *testing.B) {
			tt, err := sluicetest.New(g, sluicetest.ManualCommit())
			if err != nil {
				b.Fatal(err)
			}
			v := []byte("x")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				at := sluicetest.WithTimestamp(t0.Add(time.Duration(i) * time.Millisecond))
				if err := tt.SendRaw("in", keys[i%len(keys)], v, at); err != nil {
					b.Fatal(err)
				}
				if (i+1)%1000 == 0 {
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
		})
	}
}
