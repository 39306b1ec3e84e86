package sluicetest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// sessionGroup counts a key's clicks and, when the key has been quiet for
// 30 minutes of event time, emits the count and deletes the row. With wall
// set it also sets a wall-clock timer, an hour after the tester's clock at
// the click.
func sessionGroup(wall bool, now func() time.Time) (*sluice.Group[int64], *sluice.OutputTopic[string]) {
	g := sluice.DefineGroup[int64]("sessions")
	sluice.Persist(g, codec.Int64())
	out := sluice.Output(g, "sessions-out", codec.String())
	sluice.Input(g, "clicks", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		ctx.SetTimer("end", ctx.Timestamp().Add(30*time.Minute))
		if wall {
			ctx.SetWallTimer("report", now().Add(time.Hour))
		}
		return nil
	})
	sluice.OnTimer(g, func(ctx *sluice.Context[int64], t sluice.Timer) error {
		n, _ := ctx.Value()
		if t.Name == "end" {
			ctx.Delete()
		}
		return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s %s %d", t.Name, ctx.Key(), n))
	})
	return g, out
}

func TestTesterFiresEventTimersWhenStreamTimePassesThemEvenAfterACrash(t *testing.T) {
	g, out := sessionGroup(false, nil)
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, at := range []time.Duration{0, 10 * time.Minute} {
		if err := sluicetest.Send(tt, "clicks", "u1", "click", sluicetest.WithTimestamp(t0.Add(at))); err != nil {
			t.Fatalf("click %d: %v", i, err)
		}
	}
	if got := outputs(t, tt, out); len(got) != 0 {
		t.Fatalf("outputs before the session ended: %q", got)
	}
	// The timer is in the changelog: a crash and a restore keep it.
	tt.Crash()
	// Another key's record 41 minutes after u1's last click moves stream
	// time past u1's timer (10 min + 30 min), which fires before it.
	if err := sluicetest.Send(tt, "clicks", "u2", "click", sluicetest.WithTimestamp(t0.Add(41*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if got, want := outputs(t, tt, out), []string{"end u1 2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outputs %q, want %q", got, want)
	}
	if _, ok, _ := tt.Row("u1"); ok {
		t.Error("u1's row outlived its session")
	}
	if n, _, _ := tt.Row("u2"); n != 1 {
		t.Errorf("u2's row %d, want 1", n)
	}
}

func TestTesterAdvanceClockFiresWallClockTimersAndIdleAdvance(t *testing.T) {
	var tt *sluicetest.Tester[int64]
	g, out := sessionGroup(true, func() time.Time { return tt.Now() })
	var err error
	tt, err = sluicetest.New(g, sluicetest.Partitions(2),
		sluicetest.ProcessorOptions(sluice.IdleAdvance(10*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if !tt.Now().Equal(sluicetest.DefaultClock) {
		t.Fatalf("clock starts at %v, want %v", tt.Now(), sluicetest.DefaultClock)
	}
	if err := sluicetest.Send(tt, "clicks", "u1", "click", sluicetest.WithTimestamp(tt.Now())); err != nil {
		t.Fatal(err)
	}
	// 20 minutes of wall time: the partition has been idle for 10, so its
	// stream time follows the clock, but only to 20 minutes past the
	// click; the session timer (30 minutes) waits.
	if err := tt.AdvanceClock(20 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, tt, out); len(got) != 0 {
		t.Fatalf("outputs after 20 minutes: %q", got)
	}
	if err := tt.AdvanceClock(15 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, want := outputs(t, tt, out), []string{"end u1 1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outputs after 35 minutes %q, want %q", got, want)
	}
	// The wall-clock timer was set for an hour after the click.
	if err := tt.AdvanceClock(25 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, want := outputs(t, tt, out), []string{"end u1 1", "report u1 0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outputs after an hour %q, want %q", got, want)
	}
	if err := tt.AdvanceClock(-time.Second); err == nil {
		t.Error("the clock went back")
	}
}

// A Kafka timestamp is milliseconds in an int64, far more than stream time,
// Unix nanoseconds, can hold: a record stamped 1e16 ms (a producer's unit
// mistaken) is in the year 318,857, whose nanoseconds wrap to 2029.
func TestARecordTimestampBeyondWhatStreamTimeHoldsLeavesStreamTimeAlone(t *testing.T) {
	g := sluice.DefineGroup[string]("far")
	sluice.Persist(g, codec.String())
	out := sluice.Output(g, "far-out", codec.String())
	sluice.Input(g, "in", codec.String(), func(ctx *sluice.Context[string], _ string) error {
		ctx.SetValue(ctx.StreamTime().UTC().Format(time.RFC3339))
		if ctx.Key() == "u1" {
			ctx.SetTimer("end", ctx.Timestamp().Add(30*time.Minute))
		}
		return nil
	})
	sluice.OnTimer(g, func(ctx *sluice.Context[string], tm sluice.Timer) error {
		return out.Emit(ctx, ctx.Key(), tm.Name)
	})
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := sluicetest.Send(tt, "in", "u1", "x", sluicetest.WithTimestamp(t0)); err != nil {
		t.Fatal(err)
	}
	far := time.UnixMilli(1e16)
	if err := sluicetest.Send(tt, "in", "far", "x", sluicetest.WithTimestamp(far)); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, "in", "u2", "x", sluicetest.WithTimestamp(t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, tt, out); len(got) != 0 {
		t.Errorf("timers fired by a timestamp stream time cannot hold: %q", got)
	}
	for key, want := range map[string]string{"far": "2026-03-01T12:00:00Z", "u2": "2026-03-01T12:01:00Z"} {
		if got, _, _ := tt.Row(key); got != want {
			t.Errorf("stream time seen by %s: %s, want %s", key, got, want)
		}
	}
}

func TestARecordTimestampBeyondWhatStreamTimeHoldsLeavesAConcurrentInputsStreamTimeAlone(t *testing.T) {
	g := sluice.DefineGroup[string]("far-concurrent")
	out := sluice.Output(g, "far-concurrent-out", codec.String())
	sluice.ConcurrentInput(g, "in", codec.String(), func(ctx *sluice.Context[string], _ string) error {
		return out.Emit(ctx, ctx.Key(), ctx.StreamTime().UTC().Format(time.RFC3339))
	}, 1)
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{t0, time.UnixMilli(1e16), t0.Add(time.Minute)} {
		if err := sluicetest.Send(tt, "in", "k", "x", sluicetest.WithTimestamp(at)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z", "2026-03-01T12:01:00Z"}
	if got := outputs(t, tt, out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream times seen %q, want %q", got, want)
	}
}
