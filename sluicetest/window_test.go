package sluicetest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// counting folds records into a count of int64s.
var counting = sluice.Aggregator[string, int64]{
	Init:  func() int64 { return 0 },
	Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
	Codec: codec.Int64(),
}

// t0 is the epoch the window tests count seconds from; it is a multiple
// of every window size they use.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sec(s float64) sluicetest.RecordOpt {
	return sluicetest.WithTimestamp(t0.Add(time.Duration(s * float64(time.Second))))
}

// windowGroup counts the records of "in" per key in windows w and emits
// each result as "<key> <start>-<end> <count> final|update", in seconds
// from t0. With keep, the group also persists a table of its own.
func windowGroup(w sluice.Windows) (*sluice.Group[string], *sluice.OutputTopic[string]) {
	g := sluice.DefineGroup[string]("windows")
	out := sluice.Output(g, "results", codec.String())
	agg := sluice.Aggregate(g, "counts", w, counting, func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
		kind := "update"
		if r.Final {
			kind = "final"
		}
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s %g-%g %d %s", r.Key,
			r.Window.Start.Sub(t0).Seconds(), r.Window.End.Sub(t0).Seconds(), r.Value, kind))
	})
	sluice.WindowedInput(g, "in", codec.String(), agg)
	return g, out
}

func newWindowTester(t *testing.T, g *sluice.Group[string], opts ...sluicetest.Option) *sluicetest.Tester[string] {
	t.Helper()
	tt, err := sluicetest.New(g, append([]sluicetest.Option{sluicetest.Partitions(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func sendAt(t *testing.T, tt *sluicetest.Tester[string], key string, at float64) {
	t.Helper()
	if err := sluicetest.Send(tt, "in", key, "x", sec(at)); err != nil {
		t.Fatalf("send %s at %gs: %v", key, at, err)
	}
}

func results(t *testing.T, tt *sluicetest.Tester[string], out *sluice.OutputTopic[string]) []string {
	t.Helper()
	ms, err := sluicetest.Output(tt, out)
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, m := range ms {
		vs = append(vs, m.Value)
	}
	return vs
}

func wantResults(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("results\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTumblingWindowTakesARecordAtExactlyItsEndInTheNextWindow(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 9.999)
	wantResults(t, results(t, tt, out)) // stream time 9.999: [0,10) is open
	sendAt(t, tt, "a", 10)              // in [10,20), and closes [0,10)
	wantResults(t, results(t, tt, out), "a 0-10 2 final")
	sendAt(t, tt, "a", 20)
	wantResults(t, results(t, tt, out), "a 0-10 2 final", "a 10-20 1 final")
}

func TestHoppingWindowsTakeARecordInEveryWindowThatHoldsIt(t *testing.T) {
	g, out := windowGroup(sluice.Hopping(10*time.Second, 5*time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 7)  // [0,10) and [5,15)
	sendAt(t, tt, "a", 10) // [5,15) and [10,20); closes [0,10)
	sendAt(t, tt, "a", 40) // closes the rest
	wantResults(t, results(t, tt, out), "a 0-10 1 final", "a 5-15 2 final", "a 10-20 1 final")
}

func TestWindowAcceptsARecordJustBeforeEndPlusGraceAndRefusesItAtIt(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).Grace(5 * time.Second))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("late-records"))))
	sendAt(t, tt, "a", 1)
	sendAt(t, tt, "b", 14.999) // stream time 14.999: [0,10) still open
	sendAt(t, tt, "a", 9)      // out of order, within grace
	wantResults(t, results(t, tt, out))
	sendAt(t, tt, "b", 15) // closes [0,10)
	wantResults(t, results(t, tt, out), "a 0-10 2 final")
	sendAt(t, tt, "a", 9.5) // late: [0,10) closed at 15
	wantResults(t, results(t, tt, out), "a 0-10 2 final")
	dl := tt.DeadLetters()
	if len(dl) != 1 || dl[0].Key != "a" {
		t.Fatalf("dead letters %v, want the late record of a", dl)
	}
	if kind, _ := dl[0].Header(sluice.HeaderErrorKind); kind != "late" {
		t.Errorf("dead-letter kind %q, want late", kind)
	}
	if s := tt.Stats(); s.Late != 1 || s.DeadLettered != 1 {
		t.Errorf("stats: late %d, dead-lettered %d; want 1, 1", s.Late, s.DeadLettered)
	}
}
