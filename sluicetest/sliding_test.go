package sluicetest_test

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// slidingGroup counts the records of "in" per key in sliding windows w and
// emits each result as "<key> [<start>,<end>] <count> final|update", the
// bounds as durations from t0: a window that starts just after a record
// starts 1ns after it.
func slidingGroup(w sluice.Windows) (*sluice.Group[string], *sluice.OutputTopic[string]) {
	g := sluice.DefineGroup[string]("windows")
	out := sluice.Output(g, "results", codec.String())
	agg := sluice.Aggregate(g, "counts", w, counting, func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
		kind := "update"
		if r.Final {
			kind = "final"
		}
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s [%v,%v] %d %s", r.Key, r.Window.Start.Sub(t0), r.Window.End.Sub(t0), r.Value, kind))
	})
	sluice.WindowedInput(g, "in", codec.String(), agg)
	return g, out
}

func sendAtMs(t *testing.T, tt *sluicetest.Tester[string], key string, ms int64) {
	t.Helper()
	if err := sluicetest.Send(tt, "in", key, "x", sluicetest.WithTimestamp(t0.Add(time.Duration(ms)*time.Millisecond))); err != nil {
		t.Fatalf("send %s at %dms: %v", key, ms, err)
	}
}

// slidingIndexRow is the table key of the row that lists the record times
// of key that the windows of the aggregation "counts" to come may hold.
func slidingIndexRow(key string) string { return "\x00sluice\x00rcounts\x00" + key }

func TestSlidingWindowsOfTwoRecordsWithinMaxDiff(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 5000)
	sendAtMs(t, tt, "z", 100000)
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 final",
		"a [-5s,5s] 2 final",
		"a [1ns,10.000000001s] 1 final")
	if _, ok, err := tt.RawRow(slidingIndexRow("a")); err != nil || ok {
		t.Errorf("the index of a's record times is still there after its windows were purged (err %v)", err)
	}
}

func TestSlidingWindowHoldsTwoRecordsExactlyMaxDiffApart(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 10000)
	sendAtMs(t, tt, "z", 100000)
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 final",
		"a [0s,10s] 2 final",
		"a [1ns,10.000000001s] 1 final")
}

func TestSlidingWindowsDoNotJoinRecordsJustBeyondMaxDiff(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 10001)
	sendAtMs(t, tt, "z", 100000)
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 final",
		"a [1ms,10.001s] 1 final")
}

func TestSlidingWindowsTakeAnOutOfOrderRecordWithinGraceAndMakeItsWindows(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second).Grace(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 10000)
	sendAtMs(t, tt, "a", 5000) // 5s behind stream time
	sendAtMs(t, tt, "z", 100000)
	// Kafka Streams' windows of 0, 5 and 10: {0}, {0,5}, {0,5,10},
	// {5,10} and {10}.
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 final",
		"a [-5s,5s] 2 final",
		"a [0s,10s] 3 final",
		"a [1ns,10.000000001s] 2 final",
		"a [5.000000001s,15.000000001s] 1 final")
}

func TestSlidingWindowsEmitAnUpdateOfEveryWindowARecordChangesOrMakes(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second).Grace(10 * time.Second).EmitUpdates())
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 8000)
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 update",
		"a [-2s,8s] 2 update",
		"a [1ns,10.000000001s] 1 update")
}

func TestSlidingWindowClosesWhenStreamTimePassesItsEndPlusGraceAndALaterRecordIsLate(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second).Grace(5 * time.Second))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("late-records"))))
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "z", 5000) // [-10s,0s] holds its end: open at 0 + grace
	wantResults(t, resultsOf(t, tt, out, "a"))
	sendAtMs(t, tt, "z", 5001)
	wantResults(t, resultsOf(t, tt, out, "a"), "a [-10s,0s] 1 final")
	sendAtMs(t, tt, "z", 20000)
	sendAtMs(t, tt, "a", 14999) // its window [4.999s,14.999s] closed at 19.999s: late
	sendAtMs(t, tt, "a", 15000) // its window is open until stream time passes 20s
	wantOneLateRecord(t, tt, "a")
	sendAtMs(t, tt, "z", 20001)
	wantResults(t, resultsOf(t, tt, out, "a"), "a [-10s,0s] 1 final", "a [5s,15s] 1 final")
}

func TestSlidingWindowsAreRestoredAfterACrashAndARebalance(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second).Grace(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 5000)
	tt.Crash()
	sendAtMs(t, tt, "a", 8000)
	if err := tt.Rebalance(); err != nil {
		t.Fatal(err)
	}
	sendAtMs(t, tt, "a", 3000)
	sendAtMs(t, tt, "z", 100000)
	// The windows of 0, 3, 5 and 8.
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 final",
		"a [-7s,3s] 2 final",
		"a [-5s,5s] 3 final",
		"a [-2s,8s] 4 final",
		"a [1ns,10.000000001s] 3 final",
		"a [3.000000001s,13.000000001s] 2 final",
		"a [5.000000001s,15.000000001s] 1 final")
}

// TestSlidingWindowsAreEveryDistinctSetOfRecordsWithinMaxDiff checks the
// final results of random records of two keys, out of order, at equal
// times among them and with crashes between them, against the windows
// Kafka Streams defines, counted from the accepted records themselves.
func TestSlidingWindowsAreEveryDistinctSetOfRecordsWithinMaxDiff(t *testing.T) {
	const maxDiff, grace = 10 * time.Second, 7 * time.Second
	type window struct{ start, end time.Duration }
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 0))
		g, out := slidingGroup(sluice.Sliding(maxDiff).Grace(grace))
		tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
		accepted := map[string][]time.Duration{}
		late := 0
		stream := time.Duration(-1 << 62)
		for range 60 {
			key := []string{"a", "b"}[rng.IntN(2)]
			at := time.Duration(rng.IntN(120)) * 500 * time.Millisecond
			stream = max(stream, at)
			if at+grace >= stream {
				accepted[key] = append(accepted[key], at)
			} else {
				late++
			}
			sendAtMs(t, tt, key, at.Milliseconds())
			if rng.IntN(8) == 0 {
				tt.Crash()
			}
		}
		sendAtMs(t, tt, "z", 1000000)

		for _, key := range []string{"a", "b"} {
			records := accepted[key]
			ws := map[window]bool{}
			for _, r := range records {
				ws[window{r - maxDiff, r}] = true
				right := window{r + 1, r + 1 + maxDiff}
				if slices.ContainsFunc(records, func(s time.Duration) bool { return s > r && s <= right.end }) {
					ws[right] = true
				}
			}
			var want []string
			for _, w := range slices.SortedFunc(maps.Keys(ws), func(x, y window) int {
				if x.end != y.end {
					return cmp.Compare(x.end, y.end)
				}
				return cmp.Compare(x.start, y.start)
			}) {
				n := 0
				for _, r := range records {
					if w.start <= r && r <= w.end {
						n++
					}
				}
				want = append(want, fmt.Sprintf("%s [%v,%v] %d final", key, w.start, w.end, n))
			}
			if got := resultsOf(t, tt, out, key); !slices.Equal(got, want) {
				t.Fatalf("seed %d: accepted records of %s %v\nresults\n%s\nwant\n%s", seed, key, records,
					strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		if s := tt.Stats(); s.Late != int64(late) {
			t.Fatalf("seed %d: late %d, want %d", seed, s.Late, late)
		}
	}
}

func TestSlidingWindowStartsFromTheWindowAfterARecordTimeNoLongerIndexed(t *testing.T) {
	g, out := slidingGroup(sluice.Sliding(10 * time.Second).Grace(5 * time.Second))
	tt := newWindowTester(t, g)
	sendAtMs(t, tt, "a", 0)
	sendAtMs(t, tt, "a", 8000)
	sendAtMs(t, tt, "z", 15001) // past 0 + maxDiff + grace: no window to come holds 0
	// [0.5s,10.5s] holds 8s and 10.5s: it starts from [1ns,10.000000001s],
	// which holds 8s alone, not from [-2s,8s], which also holds 0.
	sendAtMs(t, tt, "a", 10500)
	sendAtMs(t, tt, "z", 100000)
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a [-10s,0s] 1 final",
		"a [-2s,8s] 2 final",
		"a [1ns,10.000000001s] 1 final",
		"a [500ms,10.5s] 2 final",
		"a [8.000000001s,18.000000001s] 1 final")
}
