package sluicetest_test

import (
	"encoding/binary"
	"errors"
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

// wantOneLateRecord fails the test unless key's record is the one dead
// letter, of kind late, and the one late record Stats counts.
func wantOneLateRecord(t *testing.T, tt *sluicetest.Tester[string], key string) {
	t.Helper()
	dl := tt.DeadLetters()
	if len(dl) != 1 || dl[0].Key != key {
		t.Fatalf("dead letters %v, want the late record of %s", dl, key)
	}
	if kind, _ := dl[0].Header(sluice.HeaderErrorKind); kind != "late" {
		t.Errorf("dead-letter kind %q, want late", kind)
	}
	if s := tt.Stats(); s.Late != 1 {
		t.Errorf("late records %d, want 1", s.Late)
	}
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
	wantOneLateRecord(t, tt, "a")
	if s := tt.Stats(); s.Late != 1 || s.DeadLettered != 1 {
		t.Errorf("stats: late %d, dead-lettered %d; want 1, 1", s.Late, s.DeadLettered)
	}
}

func TestWindowEmitsUpdatesAfterEveryChangeAndOneFinalResult(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).EmitUpdates())
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 1)
	sendAt(t, tt, "a", 2)
	sendAt(t, tt, "b", 3)
	sendAt(t, tt, "a", 12)
	wantResults(t, results(t, tt, out),
		"a 0-10 1 update", "a 0-10 2 update", "b 0-10 1 update",
		"a 0-10 2 final", "b 0-10 1 final", "a 10-20 1 update")
	if s := tt.Stats(); s.WindowResults != 2 || s.WindowUpdates != 4 {
		t.Errorf("stats: %d final results, %d updates; want 2, 4", s.WindowResults, s.WindowUpdates)
	}
}

// windowRows returns the window rows of the aggregation "counts" that the
// group's windows topic holds, as "<start>-<end>" in seconds from t0 per
// key: those written, less those its purge marks cover (every row whose
// key sorts below the mark).
func windowRows(t *testing.T, tt *sluicetest.Tester[string], g *sluice.Group[string]) map[string][]string {
	t.Helper()
	const prefix, mark = "\x00sluice\x00wcounts\x00", "\x00sluice\x00pcounts"
	live := make(map[string]bool)
	var order []string
	for _, r := range tt.Records(g.WindowsTopic()) {
		if r.Key == mark {
			for k := range live {
				if k < string(r.Value) {
					live[k] = false
				}
			}
			continue
		}
		if !strings.HasPrefix(r.Key, prefix) {
			continue
		}
		if _, seen := live[r.Key]; !seen {
			order = append(order, r.Key)
		}
		live[r.Key] = r.Value != nil
	}
	rows := make(map[string][]string)
	for _, k := range order {
		if !live[k] {
			continue
		}
		rest := []byte(k[len(prefix):])
		end := time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8])^(1<<63)))
		start := time.Unix(0, int64(binary.BigEndian.Uint64(rest[8:16])^(1<<63)))
		key := string(rest[16:])
		rows[key] = append(rows[key], fmt.Sprintf("%g-%g", start.Sub(t0).Seconds(), end.Sub(t0).Seconds()))
	}
	return rows
}

func TestClosedWindowIsPurgedWhenItsRetentionEnds(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).Retain(30 * time.Second))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
	sendAt(t, tt, "a", 1)
	sendAt(t, tt, "a", 15) // closes [0,10), kept until 30
	wantResults(t, results(t, tt, out), "a 0-10 1 final")
	if got := fmt.Sprint(windowRows(t, tt, g)); got != "map[a:[0-10 10-20]]" {
		t.Fatalf("windows after the close: %s", got)
	}
	// Closed and retained: not open to records.
	sendAt(t, tt, "a", 5)
	if s := tt.Stats(); s.Late != 1 || s.Skipped != 1 {
		t.Fatalf("a record for a closed window kept: late %d, skipped %d; want 1, 1", s.Late, s.Skipped)
	}
	sendAt(t, tt, "b", 29.999)
	if got := fmt.Sprint(windowRows(t, tt, g)); got != "map[a:[0-10 10-20] b:[20-30]]" {
		t.Fatalf("windows before the retention ends: %s", got)
	}
	sendAt(t, tt, "b", 30) // purges [0,10), closes [10,20) and [20,30)
	if got := fmt.Sprint(windowRows(t, tt, g)); got != "map[a:[10-20] b:[20-30 30-40]]" {
		t.Fatalf("windows once the retention of [0,10) ended: %s", got)
	}
	if s := tt.Stats(); s.WindowsPurged != 1 {
		t.Errorf("purged %d windows, want 1", s.WindowsPurged)
	}
	wantResults(t, results(t, tt, out), "a 0-10 1 final", "a 10-20 1 final", "b 20-30 1 final")
}

func TestWindowIsPurgedAtCloseByDefault(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).Grace(2 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 1)
	sendAt(t, tt, "b", 2)
	sendAt(t, tt, "a", 12)
	wantResults(t, results(t, tt, out), "a 0-10 1 final", "b 0-10 1 final")
	if got := fmt.Sprint(windowRows(t, tt, g)); got != "map[a:[10-20]]" {
		t.Fatalf("windows after the close: %s", got)
	}
	if s := tt.Stats(); s.WindowsPurged != 2 || len(s.Partitions) != 0 {
		t.Errorf("purged %d windows, want 2", s.WindowsPurged)
	}
}

func TestIdlePartitionClosesItsLastWindowWithIdleAdvance(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).Grace(5 * time.Second))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.IdleAdvance(10*time.Second)))
	sendAt(t, tt, "a", 3)
	for _, step := range []time.Duration{5 * time.Second, 6 * time.Second} {
		if err := tt.AdvanceClock(step); err != nil {
			t.Fatal(err)
		}
		// Idle for 5s, then 11s: stream time 3s, then 14s.
		wantResults(t, results(t, tt, out))
	}
	if err := tt.AdvanceClock(time.Second); err != nil {
		t.Fatal(err)
	}
	// Stream time 15s, the end of [0,10) plus grace.
	wantResults(t, results(t, tt, out), "a 0-10 1 final")
}

func TestWindowsSurviveACrashAndCloseOnceAfterTheRestore(t *testing.T) {
	for _, eos := range []bool{false, true} {
		t.Run(fmt.Sprintf("exactly once %v", eos), func(t *testing.T) {
			var opts []sluice.ProcessorOpt
			if eos {
				opts = append(opts, sluice.Guarantee(sluice.ExactlyOnce))
			}
			g, out := windowGroup(sluice.Tumbling(10 * time.Second).Retain(20 * time.Second))
			tt := newWindowTester(t, g, sluicetest.ProcessorOptions(opts...))
			sendAt(t, tt, "a", 1)
			sendAt(t, tt, "a", 2)
			sendAt(t, tt, "b", 11) // closes [0,10), kept until 20
			tt.Crash()
			sendAt(t, tt, "a", 12)
			sendAt(t, tt, "b", 20) // purges [0,10), closes [10,20)
			tt.Crash()
			sendAt(t, tt, "a", 35)
			wantResults(t, results(t, tt, out), "a 0-10 2 final", "a 10-20 1 final", "b 10-20 1 final", "b 20-30 1 final")
		})
	}
}

func TestAbortedBatchLeavesWindowsAsTheLastCommitHadThem(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second))
	tt := newWindowTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)))
	sendAt(t, tt, "a", 1)
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	sendAt(t, tt, "a", 2)
	sendAt(t, tt, "b", 11) // closes [0,10) with 2, in the open transaction
	if err := tt.Abort(); err != nil {
		t.Fatal(err)
	}
	// The records are read again: the same windows, closed once.
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	sendAt(t, tt, "b", 25)
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	wantResults(t, results(t, tt, out), "a 0-10 2 final", "b 10-20 1 final")
}

func TestLateRecordIsSkippedAndCounted(t *testing.T) {
	g, out := windowGroup(sluice.Hopping(10*time.Second, 5*time.Second))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
	sendAt(t, tt, "a", 12)
	sendAt(t, tt, "a", 7) // [0,10) closed at 10, [5,15) open: taken
	sendAt(t, tt, "a", 4) // [0,10) and [-5,5) closed: late
	sendAt(t, tt, "a", 30)
	wantResults(t, results(t, tt, out), "a 5-15 2 final", "a 10-20 1 final")
	if s := tt.Stats(); s.Late != 1 || s.Skipped != 1 {
		t.Errorf("stats: late %d, skipped %d; want 1, 1", s.Late, s.Skipped)
	}
}

func TestLateRecordStopsThePartitionUnderFail(t *testing.T) {
	g, _ := windowGroup(sluice.Tumbling(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 12)
	err := sluicetest.Send(tt, "in", "a", "x", sec(3))
	var late *sluice.LateError
	if !errors.As(err, &late) || late.Aggregation != "counts" || !late.Time.Equal(t0.Add(3*time.Second)) || !late.StreamTime.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("late record: %v, want a LateError of counts at 3s, stream time 12s", err)
	}
}

// failingFinals is windowGroup whose handler fails on the final result of
// key "bad" while fail is set.
func failingFinals(fail *bool) (*sluice.Group[string], *sluice.OutputTopic[string]) {
	g := sluice.DefineGroup[string]("windows")
	out := sluice.Output(g, "results", codec.String())
	agg := sluice.Aggregate(g, "counts", sluice.Tumbling(10*time.Second), counting, func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
		if err := out.Emit(ctx, r.Key, fmt.Sprintf("%s %d", r.Key, r.Value)); err != nil {
			return err
		}
		if r.Key == "bad" && *fail {
			return errors.New("cannot report")
		}
		return nil
	})
	sluice.WindowedInput(g, "in", codec.String(), agg)
	return g, out
}

func TestFailedFinalResultClosesItsWindowAgainAfterFailAndOnceUnderSkip(t *testing.T) {
	fail := true
	g, out := failingFinals(&fail)
	tt := newWindowTester(t, g)
	sendAt(t, tt, "bad", 1)
	sendAt(t, tt, "good", 2)
	err := sluicetest.Send(tt, "in", "x", "x", sec(11))
	var werr *sluice.WindowError
	if !errors.As(err, &werr) || werr.Key != "bad" || werr.Aggregation != "counts" {
		t.Fatalf("closing: %v, want the WindowError of bad", err)
	}
	wantResults(t, results(t, tt, out)) // the failed result's emit is dropped
	fail = false
	if err := tt.Commit(); err != nil { // the record at 11s is read again
		t.Fatal(err)
	}
	sendAt(t, tt, "x", 25)
	wantResults(t, results(t, tt, out), "bad 1", "good 1", "x 1")

	fail = true
	g, out = failingFinals(&fail)
	tt = newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("dead"))))
	sendAt(t, tt, "bad", 1)
	sendAt(t, tt, "good", 2)
	sendAt(t, tt, "x", 11)
	sendAt(t, tt, "x", 25)
	wantResults(t, results(t, tt, out), "good 1", "x 1")
	dl := tt.DeadLetters()
	if len(dl) != 1 || dl[0].Key != "bad" || string(dl[0].Value) != "1" {
		t.Fatalf("dead letters %v, want bad's window with its count", dl)
	}
	if kind, _ := dl[0].Header(sluice.HeaderErrorKind); kind != "window" {
		t.Errorf("dead-letter kind %q, want window", kind)
	}
}

type event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

func TestRecordTimeIsTheTimeOfWindowsStreamTimeAndTheContext(t *testing.T) {
	g := sluice.DefineGroup[string]("events")
	out := sluice.Output(g, "results", codec.String())
	agg := sluice.Aggregate(g, "counts", sluice.Tumbling(10*time.Second), sluice.Aggregator[event, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ event, _ sluice.Point) int64 { return n + 1 },
		Codec: codec.Int64(),
	}, func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s %g %d", r.Key, r.Window.Start.Sub(t0).Seconds(), r.Value))
	})
	sluice.Input(g, "in", codec.JSON[event](), func(ctx *sluice.Context[string], e event) error {
		if !ctx.Timestamp().Equal(e.At) {
			return fmt.Errorf("timestamp %v, want the event's %v", ctx.Timestamp(), e.At)
		}
		return agg.Add(ctx, e)
	}, sluice.RecordTime(func(_ string, e event) time.Time { return e.At }))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
	// The Kafka timestamps say nothing; the events' times decide.
	for _, s := range []float64{1, 5, 12, 3, 25} {
		if err := sluicetest.Send(tt, "in", "a", event{At: t0.Add(time.Duration(s) * time.Second)}, sec(1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tt.SendRaw("in", "a", []byte("not json"), sec(2000)); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, "in", "a", event{At: t0.Add(26 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	// 3s came after 12s: late. The undecodable record moved nothing.
	wantResults(t, results(t, tt, out), "a 0 2", "a 10 1")
	if s := tt.Stats(); s.Late != 1 || s.Skipped != 2 {
		t.Errorf("stats: late %d, skipped %d; want 1, 2", s.Late, s.Skipped)
	}
}

func TestWindowsWithoutPersistRefuseTheGroupsOwnRows(t *testing.T) {
	g := sluice.DefineGroup[string]("windows")
	agg := sluice.Aggregate(g, "counts", sluice.Tumbling(10*time.Second), counting, func(*sluice.Context[string], sluice.WindowResult[int64]) error { return nil })
	sluice.Input(g, "in", codec.String(), func(ctx *sluice.Context[string], v string) error {
		if v == "set" {
			ctx.SetValue("x")
		}
		return agg.Add(ctx, v)
	})
	tt := newWindowTester(t, g)
	if err := sluicetest.Send(tt, "in", "a", "add", sec(1)); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, "in", "a", "set", sec(2)); err == nil || !strings.Contains(err.Error(), "has no table: declare one with Persist") {
		t.Fatalf("SetValue without Persist: %v", err)
	}
}

func TestAdvanceStreamTimeClosesWindowsOnEveryPartitionWithoutARecord(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).Grace(time.Second))
	tt := newWindowTester(t, g, sluicetest.Partitions(4))
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		sendAt(t, tt, k, 3)
	}
	if err := tt.AdvanceStreamTime(t0.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	wantResults(t, results(t, tt, out)) // within grace
	if err := tt.AdvanceStreamTime(t0.Add(11 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := results(t, tt, out)
	slices.Sort(got)
	wantResults(t, got, "a 0-10 1 final", "b 0-10 1 final", "c 0-10 1 final", "d 0-10 1 final", "e 0-10 1 final")
}

// The tester writes windows as a processor does: to the group's windows
// topic, apart from the table's rows, and a purged window gets no
// tombstone there; after a crash they are restored from it.
func TestTesterWritesWindowsToTheWindowsTopicAndRestoresThemFromIt(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second).Retain(20 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 1)
	sendAt(t, tt, "b", 11) // closes [0,10)
	sendAt(t, tt, "b", 40) // purges [0,10) and [10,20)
	isWindow := func(key string) bool { return strings.HasPrefix(key, "\x00sluice\x00w") }
	for _, r := range tt.Records(g.TableTopic()) {
		if isWindow(r.Key) {
			t.Errorf("window row %q in the table topic", r.Key)
		}
	}
	windows := tt.Records(g.WindowsTopic())
	if len(windows) == 0 {
		t.Fatalf("no records in the windows topic %s; topics %v", g.WindowsTopic(), tt.Topics())
	}
	for _, r := range windows {
		if isWindow(r.Key) && r.Value == nil {
			t.Errorf("tombstone of window row %q in the windows topic", r.Key)
		}
	}
	tt.Crash()
	sendAt(t, tt, "b", 41)
	sendAt(t, tt, "b", 60)
	wantResults(t, results(t, tt, out), "a 0-10 1 final", "b 10-20 1 final", "b 40-50 2 final")
}

// Stream time is kept in Unix nanoseconds: a time beyond them is refused,
// not wrapped around to another one.
func TestAdvanceStreamTimeRefusesATimeBeyondTheYear2262(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(10 * time.Second))
	tt := newWindowTester(t, g)
	sendAt(t, tt, "a", 1)
	for _, at := range []time.Time{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), {}} {
		if err := tt.AdvanceStreamTime(at); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("advance stream time to %v: %v, want an error that it is out of range", at, err)
		}
	}
	wantResults(t, results(t, tt, out))
	if err := tt.AdvanceStreamTime(time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	wantResults(t, results(t, tt, out), "a 0-10 1 final")
}

// After a crash the records not committed are read again before anything
// else, as a restarted processor reads them before any later record: moving
// stream time or the clock processes them first, so they are not late.
func TestAdvancingTimeAfterACrashReadsTheRecordsWaitingFirst(t *testing.T) {
	for _, clock := range []bool{false, true} {
		t.Run(fmt.Sprintf("clock %v", clock), func(t *testing.T) {
			g, out := windowGroup(sluice.Tumbling(10 * time.Second))
			tt := newWindowTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.IdleAdvance(time.Minute)))
			sendAt(t, tt, "a", 1)
			sendAt(t, tt, "a", 2)
			tt.Crash() // both records are to be read again
			var err error
			if clock {
				err = tt.AdvanceClock(time.Hour)
			} else {
				err = tt.AdvanceStreamTime(t0.Add(time.Hour))
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.Commit(); err != nil {
				t.Fatal(err)
			}
			wantResults(t, results(t, tt, out), "a 0-10 2 final")
		})
	}
}

// TestWindowCountsHoldWhenTheirRowsLeaveACacheSmallerThanTheWindows runs
// windows of more keys than the row cache holds, so their rows are read
// back from the store, with 12 keys and with more keys than the engine
// tracks the new rows of (4096) without reading the store.
func TestWindowCountsHoldWhenTheirRowsLeaveACacheSmallerThanTheWindows(t *testing.T) {
	for _, keys := range []int{12, 4200} {
		t.Run(fmt.Sprintf("%d keys", keys), func(t *testing.T) {
			g, out := windowGroup(sluice.Tumbling(10 * time.Second))
			tt := newWindowTester(t, g, sluicetest.ManualCommit(),
				sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce), sluice.CacheRows(3)))
			commit := func() {
				t.Helper()
				if err := tt.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for i := range keys {
				want = append(want, fmt.Sprintf("k%05d 0-10 3 final", i))
			}
			step := 9.0 / float64(3*keys)
			at := 0.0
			for round := range 3 {
				for i := range keys {
					at += step
					sendAt(t, tt, fmt.Sprintf("k%05d", i), at)
					if i%4 == 3 {
						commit()
					}
					// An aborted batch that made and changed windows:
					// its records are read again.
					if round == 2 && i == 5 {
						if err := tt.Abort(); err != nil {
							t.Fatal(err)
						}
						commit()
					}
				}
			}
			sendAt(t, tt, "z", 11) // closes [0,10)
			commit()
			wantResults(t, results(t, tt, out), want...)
		})
	}
}

// TestWindowsClosedBeforeAFailedFinalResultAreNotClosedAgain keeps closed
// windows (Retain), so only the cursor tells that they have had their
// final result when the failed one closes again.
func TestWindowsClosedBeforeAFailedFinalResultAreNotClosedAgain(t *testing.T) {
	for _, eos := range []bool{false, true} {
		t.Run(fmt.Sprintf("exactly once %v", eos), func(t *testing.T) {
			var opts []sluice.ProcessorOpt
			if eos {
				opts = append(opts, sluice.Guarantee(sluice.ExactlyOnce))
			}
			fail := true
			g := sluice.DefineGroup[string]("windows")
			out := sluice.Output(g, "results", codec.String())
			agg := sluice.Aggregate(g, "counts", sluice.Tumbling(10*time.Second).Retain(30*time.Second), counting,
				func(ctx *sluice.Context[string], r sluice.WindowResult[int64]) error {
					if r.Key == "bad" && fail {
						return errors.New("cannot report")
					}
					return out.Emit(ctx, r.Key, fmt.Sprintf("%s %d", r.Key, r.Value))
				})
			sluice.WindowedInput(g, "in", codec.String(), agg)
			tt := newWindowTester(t, g, sluicetest.ProcessorOptions(opts...))
			sendAt(t, tt, "a", 1)
			sendAt(t, tt, "bad", 2)
			sendAt(t, tt, "c", 3)
			err := sluicetest.Send(tt, "in", "x", "x", sec(11))
			var werr *sluice.WindowError
			if !errors.As(err, &werr) || werr.Key != "bad" {
				t.Fatalf("closing: %v, want the WindowError of bad", err)
			}
			fail = false
			if err := tt.Commit(); err != nil { // the record at 11s is read again
				t.Fatal(err)
			}
			sendAt(t, tt, "x", 25)
			wantResults(t, results(t, tt, out), "a 1", "bad 1", "c 1", "x 1")
		})
	}
}

// tallyCodec encodes a tally of strings as JSON, counting its decodes; it
// refuses to encode a tally that holds "unencodable".
type tallyCodec struct{ decodes *int }

func (c tallyCodec) Encode(v map[string]int) ([]byte, error) {
	if v["unencodable"] > 0 {
		return nil, errors.New("tally holds unencodable")
	}
	return codec.JSON[map[string]int]().Encode(v)
}

func (c tallyCodec) Decode(b []byte) (map[string]int, error) {
	*c.decodes++
	return codec.JSON[map[string]int]().Decode(b)
}

// tallyGroup tallies the values of "in" per key in tumbling windows of
// 10 s, its aggregator changing the tally in place; a record of value
// "bad" fails after it is added. Each result is "<key> <tally as JSON>".
func tallyGroup(decodes *int) (*sluice.Group[string], *sluice.OutputTopic[string]) {
	g := sluice.DefineGroup[string]("windows")
	out := sluice.Output(g, "results", codec.String())
	tally := sluice.Aggregator[string, map[string]int]{
		Init: func() map[string]int { return map[string]int{} },
		Add: func(m map[string]int, v string, _ sluice.Point) map[string]int {
			m[v]++
			return m
		},
		Codec: tallyCodec{decodes: decodes},
	}
	agg := sluice.Aggregate(g, "tally", sluice.Tumbling(10*time.Second), tally, func(ctx *sluice.Context[string], r sluice.WindowResult[map[string]int]) error {
		b, err := codec.JSON[map[string]int]().Encode(r.Value)
		if err != nil {
			return err
		}
		return out.Emit(ctx, r.Key, r.Key+" "+string(b))
	})
	sluice.Input(g, "in", codec.String(), func(ctx *sluice.Context[string], v string) error {
		if err := agg.Add(ctx, v); err != nil {
			return err
		}
		if v == "bad" {
			return errors.New("bad record")
		}
		return nil
	})
	return g, out
}

func TestAWindowsAggregateIsDecodedOnceForTheRecordsOfABatch(t *testing.T) {
	var decodes int
	g, out := tallyGroup(&decodes)
	tt := newWindowTester(t, g, sluicetest.ManualCommit())
	for i, v := range []string{"x", "y", "x", "z"} {
		if err := sluicetest.Send(tt, "in", "a", v, sec(float64(1+i))); err != nil {
			t.Fatal(err)
		}
	}
	if decodes != 0 {
		t.Errorf("four records folded into one window of a batch decoded its aggregate %d times, want 0", decodes)
	}
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	// A new batch reads the row as the store has it.
	if err := sluicetest.Send(tt, "in", "a", "y", sec(6)); err != nil {
		t.Fatal(err)
	}
	if decodes != 1 {
		t.Errorf("the window's first record of a batch decoded its aggregate %d times, want 1", decodes)
	}
	if err := sluicetest.Send(tt, "in", "b", "x", sec(11)); err != nil {
		t.Fatal(err)
	}
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	wantResults(t, results(t, tt, out), `a {"x":2,"y":2,"z":1}`)
}

// TestAFailedRecordLeavesNoTraceInAWindowsAggregateKeptDecoded fails a
// record after its Add changed the tally in place, and another whose
// tally does not encode, among records of one batch.
func TestAFailedRecordLeavesNoTraceInAWindowsAggregateKeptDecoded(t *testing.T) {
	var decodes int
	g, out := tallyGroup(&decodes)
	tt := newWindowTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.OnError(sluice.Skip)))
	for i, v := range []string{"x", "bad", "y", "unencodable", "y", "bad"} {
		if err := sluicetest.Send(tt, "in", "a", v, sec(float64(1+i))); err != nil {
			t.Fatalf("record %s: %v", v, err) // skipped if it fails
		}
	}
	if err := sluicetest.Send(tt, "in", "b", "x", sec(11)); err != nil {
		t.Fatal(err)
	}
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	wantResults(t, results(t, tt, out), `a {"x":1,"y":2}`)
	if s := tt.Stats(); s.Skipped != 3 {
		t.Errorf("skipped %d records, want 3", s.Skipped)
	}
}

// A record stamped where stream time cannot go (1e16 ms: the year 318,857,
// whose nanoseconds wrap to 2029) fails as it is added, and closes nothing.
func TestARecordTimestampBeyondWhatWindowsHoldFailsTheRecordAndClosesNothing(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(time.Minute))
	tt := newWindowTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("windows-dead"))))
	sendAt(t, tt, "k", 0)
	if err := sluicetest.Send(tt, "in", "far", "x", sluicetest.WithTimestamp(time.UnixMilli(1e16))); err != nil {
		t.Fatal(err)
	}
	sendAt(t, tt, "k", 30)
	if got := results(t, tt, out); len(got) != 0 {
		t.Fatalf("results before the window closed: %q", got)
	}
	if err := tt.AdvanceStreamTime(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := results(t, tt, out), []string{"k 0-60 2 final"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("results %q, want %q", got, want)
	}
	dead := tt.DeadLetters()
	if len(dead) != 1 || dead[0].Key != "far" {
		t.Fatalf("dead letters %v, want the one record stamped out of range", dead)
	}
	if reason, _ := dead[0].Header(sluice.HeaderError); !strings.Contains(reason, "out of range") {
		t.Errorf("dead letter's reason %q, want that its time is out of range", reason)
	}
}

func TestRecordsSentWithoutATimestampAreStampedWithTheTestersClock(t *testing.T) {
	g, out := windowGroup(sluice.Tumbling(time.Minute))
	start := t0.Add(10 * time.Second)
	tt := newWindowTester(t, g, sluicetest.Clock(start))
	for range 2 {
		if err := sluicetest.Send(tt, "in", "k", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tt.AdvanceClock(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, "in", "k", "x"); err != nil {
		t.Fatal(err)
	}
	if got, want := results(t, tt, out), []string{"k 0-60 2 final"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("results %q, want %q", got, want)
	}
	var stamps []time.Time
	for _, r := range tt.Records("in") {
		stamps = append(stamps, r.Timestamp)
	}
	if want := []time.Time{start, start, start.Add(time.Minute)}; fmt.Sprint(stamps) != fmt.Sprint(want) {
		t.Errorf("records stamped %v, want %v", stamps, want)
	}
}
