package sluicetest_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// sessionCounting counts records, and merges two sessions' counts.
var sessionCounting = sluice.Aggregator[string, int64]{
	Init:  func() int64 { return 0 },
	Add:   func(n int64, _ string, _ sluice.Point) int64 { return n + 1 },
	Merge: func(a, b int64) int64 { return a + b },
	Codec: codec.Int64(),
}

// sessionsGroup counts the records of "in" per key in session windows w,
// emitting results as windowGroup does.
func sessionsGroup(w sluice.Windows) (*sluice.Group[string], *sluice.OutputTopic[string]) {
	g := sluice.DefineGroup[string]("windows")
	out := sluice.Output(g, "results", codec.String())
	agg := sluice.Aggregate(g, "counts", w, sessionCounting, func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
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

// resultsOf is results of key alone: the tests move stream time with the
// records of another key.
func resultsOf(t *testing.T, tt *sluicetest.Tester[string], out *sluice.OutputTopic[string], key string) []string {
	t.Helper()
	var vs []string
	for _, v := range results(t, tt, out) {
		if strings.HasPrefix(v, key+" ") {
			vs = append(vs, v)
		}
	}
	return vs
}

// sessionIndexRow is the table key of the row that lists key's open
// sessions of the aggregation "counts".
func sessionIndexRow(key string) string { return "\x00sluice\x00kcounts\x00" + key }

func TestSessionFormsFromRecordsLessThanGapApart(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 5)  // 5s after: the same session
	sendAt(t, tt, "a", 15) // exactly gap after 5: a new one, and [0,5] closes at 5+10
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-5 2 final")
	sendAt(t, tt, "z", 40)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-5 2 final", "a 15-15 1 final")
}

func TestSessionExtendsWithARecordWithinGapOfEitherEnd(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second).Grace(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 20)
	sendAt(t, tt, "a", 28) // extends the end
	sendAt(t, tt, "a", 12) // out of order, within grace: extends the start
	sendAt(t, tt, "z", 47.999)
	wantResults(t, resultsOf(t, tt, out, "a"))
	sendAt(t, tt, "z", 48) // 28 + gap + grace
	wantResults(t, resultsOf(t, tt, out, "a"), "a 12-28 3 final")
}

func TestSessionRecordThatBridgesTwoSessionsMergesThemWithMerge(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second).Grace(20 * time.Second).EmitUpdates())
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 1)
	sendAt(t, tt, "a", 15) // 14s after 1: a second session
	sendAt(t, tt, "a", 8)  // less than gap from both
	// The merged session's results supersede those of the two it
	// replaced, which get no final result.
	sendAt(t, tt, "z", 100)
	wantResults(t, resultsOf(t, tt, out, "a"),
		"a 0-0 1 update", "a 0-1 2 update", "a 15-15 1 update", "a 0-15 4 update", "a 0-15 4 final")
	if _, ok, err := tt.RawRow(sessionIndexRow("a")); err != nil || ok {
		t.Errorf("the index of a's open sessions is still there after its last session closed (err %v)", err)
	}
}

func TestLateRecordWithinGraceMergesTwoSessions(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second).Grace(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 15)
	sendAt(t, tt, "z", 19.5) // [0,0] is open until 0 + gap + grace = 20
	sendAt(t, tt, "a", 7)    // 12.5s behind stream time: merges [0,0] and [15,15]
	sendAt(t, tt, "z", 34.999)
	wantResults(t, resultsOf(t, tt, out, "a")) // no final result for [0,0]
	sendAt(t, tt, "z", 35)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-15 3 final")
}

func TestSessionClosesWhenStreamTimeReachesItsEndPlusGapPlusGrace(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second).Grace(5 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 3) // [0,3] closes at 18
	sendAt(t, tt, "z", 17.999)
	wantResults(t, resultsOf(t, tt, out, "a"))
	if _, ok, err := tt.RawRow(sessionIndexRow("a")); err != nil || !ok {
		t.Fatalf("no index of a's open sessions (err %v)", err)
	}
	sendAt(t, tt, "a", 12.5) // extends [0,3] to [0,12.5], which closes at 27.5
	sendAt(t, tt, "z", 27.499)
	wantResults(t, resultsOf(t, tt, out, "a"))
	sendAt(t, tt, "z", 27.5)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-12.5 3 final")
}

func TestSessionRecordIsLateWhenItJoinsNoOpenSessionAndItsOwnWouldBeClosed(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second).Grace(5 * time.Second))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("late-records"))))
	sendAt(t, tt, "a", 0) // closes at 15
	sendAt(t, tt, "z", 30)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-0 1 final")
	sendAt(t, tt, "a", 15) // alone, it would close at 30: late
	sendAt(t, tt, "a", 16) // closes at 31: a new session
	wantOneLateRecord(t, tt, "a")
	sendAt(t, tt, "z", 31)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-0 1 final", "a 16-16 1 final")
}

func TestOpenSessionsAreRestoredAfterACrashAndARebalance(t *testing.T) {
	g, out := sessionsGroup(sluice.Sessions(10 * time.Second).Grace(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 15)
	tt.Crash()
	sendAt(t, tt, "a", 7) // merges the two restored sessions
	if err := tt.Rebalance(); err != nil {
		t.Fatal(err)
	}
	sendAt(t, tt, "a", 24) // extends the merged one
	sendAt(t, tt, "z", 100)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-24 4 final")
}

func TestFailedRecordLeavesTheSessionsItWouldHaveMergedAsTheyWere(t *testing.T) {
	g := sluice.DefineGroup[string]("windows")
	out := sluice.Output(g, "results", codec.String())
	agg := sluice.Aggregate(g, "counts", sluice.Sessions(10*time.Second).Grace(10*time.Second), sessionCounting,
		func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
			return out.Emit(ctx, r.Key, fmt.Sprintf("%s %g-%g %d", r.Key, r.Window.Start.Sub(t0).Seconds(), r.Window.End.Sub(t0).Seconds(), r.Value))
		})
	sluice.Input(g, "in", codec.String(), func(ctx *sluice.Context[string], msg string) error {
		if err := agg.Add(ctx, msg); err != nil {
			return err
		}
		if msg == "fail" {
			return fmt.Errorf("refused after adding")
		}
		return nil
	})
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
	sendAt(t, tt, "a", 0)
	sendAt(t, tt, "a", 15)
	if err := sluicetest.Send(tt, "in", "a", "fail", sec(7)); err != nil {
		t.Fatal(err)
	}
	sendAt(t, tt, "z", 100)
	wantResults(t, resultsOf(t, tt, out, "a"), "a 0-0 1", "a 15-15 1")
	if s := tt.Stats(); s.Skipped != 1 {
		t.Errorf("skipped %d, want 1", s.Skipped)
	}
}

// TestSessionsOfRandomRecordsAreThoseOfAPlainModel checks the final
// results of random records of a few keys, out of order, late and with
// crashes between them, against sessions kept in a plain slice.
func TestSessionsOfRandomRecordsAreThoseOfAPlainModel(t *testing.T) {
	const gap, grace = 10 * time.Second, 8 * time.Second
	type session struct {
		key        string
		start, end time.Duration
		n          int
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		g, out := sessionsGroup(sluice.Sessions(gap).Grace(grace))
		tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
		var open []session
		var want []string
		late := 0
		stream := time.Duration(-1 << 62)
		closeDue := func() {
			slices.SortStableFunc(open, func(x, y session) int { return cmp.Compare(x.end, y.end) })
			for len(open) > 0 && stream >= open[0].end+gap+grace {
				s := open[0]
				want = append(want, fmt.Sprintf("%s %g-%g %d final", s.key, s.start.Seconds(), s.end.Seconds(), s.n))
				open = open[1:]
			}
		}
		for i := range 60 {
			key := string(rune('a' + rng.IntN(3)))
			at := time.Duration(i)*time.Second + time.Duration(rng.IntN(60)-45)*500*time.Millisecond
			stream = max(stream, at)
			closeDue()
			merged := session{key: key, start: at, end: at, n: 1}
			kept := open[:0:0]
			for _, s := range open {
				if s.key == key && at-s.end < gap && s.start-at < gap {
					merged.start, merged.end, merged.n = min(merged.start, s.start), max(merged.end, s.end), merged.n+s.n
				} else {
					kept = append(kept, s)
				}
			}
			if merged.n == 1 && stream >= at+gap+grace {
				late++
			} else {
				open = append(kept, merged)
			}
			if err := sluicetest.Send(tt, "in", key, "x", sluicetest.WithTimestamp(t0.Add(at))); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(10) == 0 {
				tt.Crash()
			}
		}
		stream = time.Hour
		closeDue()
		if err := sluicetest.Send(tt, "in", "z", "x", sluicetest.WithTimestamp(t0.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range results(t, tt, out) {
			if !strings.HasPrefix(r, "z ") {
				got = append(got, r)
			}
		}
		// Sessions that close at one stream time close in order of end,
		// then start and key; the model orders them by end alone.
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: results\n%s\nwant\n%s", seed, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if s := tt.Stats(); s.Late != int64(late) {
			t.Fatalf("seed %d: late %d, want %d", seed, s.Late, late)
		}
	}
}

// TestWindowErrorWritesASessionsEndAsIncluded: the error of a failed final
// result names a session as [first, last], its end being a record's time,
// and a tumbling window as [start, end).
func TestWindowErrorWritesASessionsEndAsIncluded(t *testing.T) {
	for _, c := range []struct {
		name string
		w    sluice.Windows
		want string
	}{
		{"sessions", sluice.Sessions(5 * time.Second), "12:00:02Z]: cannot report"},
		{"tumbling", sluice.Tumbling(10 * time.Second), "12:00:10Z): cannot report"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := sluice.DefineGroup[string]("windows")
			agg := sluice.Aggregate(g, "counts", c.w, sessionCounting, func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
				return fmt.Errorf("cannot report")
			})
			sluice.WindowedInput(g, "in", codec.String(), agg)
			tt := newWindowTester(t, g)
			sendAt(t, tt, "a", 1)
			sendAt(t, tt, "a", 2)
			err := sluicetest.Send(tt, "in", "x", "x", sec(30))
			if err == nil || !strings.HasSuffix(err.Error(), c.want) {
				t.Fatalf("closing: %v, want an error ending in %q", err, c.want)
			}
		})
	}
}
