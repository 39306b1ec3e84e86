package sluice

// Tests of stream time and timers in the partition engine, without a broker.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// timed is a group whose records are commands on the key's timers:
// "set <name> <sec>" sets an event-time timer at second sec, "wall <name>
// <sec>" a wall-clock one, "cancel <name>" cancels; every record emits
// "<key> saw <stream time>". A timer emits "<key> fired <name>@<sec>" and
// appends its name to the key's row; the timer "bad" does so and then fails.
func timed() *Group[string] {
	g := DefineGroup[string]("timed")
	Persist(g, codec.String())
	out := Output(g, "out", codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[string], v string) error {
		f := strings.Fields(v)
		switch {
		case len(f) == 3 && (f[0] == "set" || f[0] == "wall"):
			sec, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				return err
			}
			if f[0] == "set" {
				ctx.SetTimer(f[1], time.Unix(sec, 0))
			} else {
				ctx.SetWallTimer(f[1], time.Unix(sec, 0))
			}
		case len(f) == 2 && f[0] == "cancel":
			ctx.CancelTimer(f[1])
		}
		return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s saw %d", ctx.Key(), ctx.StreamTime().Unix()))
	})
	OnTimer(g, func(ctx *Context[string], t Timer) error {
		row, _ := ctx.Value()
		ctx.SetValue(row + t.Name + ";")
		if err := out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s fired %s@%d", ctx.Key(), t.Name, t.Time.Unix())); err != nil {
			return err
		}
		if t.Name == "bad" {
			return errHandler
		}
		return nil
	})
	return g
}

// at is a record of key with value v and a timestamp of sec seconds.
func at(sec int64, key, v string) *kgo.Record {
	return &kgo.Record{Topic: "in", Key: []byte(key), Value: []byte(v), Timestamp: time.Unix(sec, 0)}
}

func emitted(rs []*kgo.Record) []string {
	var vs []string
	for _, r := range rs {
		if r.Topic == "out" {
			vs = append(vs, string(r.Value))
		}
	}
	return vs
}

func mustProcess[V any](t *testing.T, e *engine[V], rs ...*kgo.Record) []string {
	t.Helper()
	for i, r := range rs {
		r.Offset = int64(i)
	}
	if done, err := e.process(context.Background(), rs); err != nil || done != len(rs) {
		t.Fatalf("process = %d, %v; want %d, nil", done, err, len(rs))
	}
	return emitted(e.effects())
}

func wantEmits(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("emits = %q\nwant   %q", got, want)
	}
}

// commit writes the batch and applies it, as a driver does once Kafka
// acknowledged it.
func commit[V any](t *testing.T, e *engine[V]) {
	t.Helper()
	e.endBatch()
	if err := e.applied(1); err != nil {
		t.Fatal(err)
	}
}

func TestEngineStreamTimeIsTheLargestTimestampSeen(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	got := mustProcess(t, e, at(10, "a", ""), at(5, "b", ""), at(20, "c", ""), at(15, "d", ""))
	wantEmits(t, got, "a saw 10", "b saw 10", "c saw 20", "d saw 20")
}

func TestEngineEventTimerFiresBeforeTheRecordThatPassesItInTimeOrder(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	got := mustProcess(t, e,
		at(10, "a", "set t1 15"),
		at(10, "b", "set t2 12"),
		at(11, "x", ""), // passes neither
		at(15, "c", ""), // passes both
		at(16, "d", ""),
	)
	wantEmits(t, got, "a saw 10", "b saw 10", "x saw 11", "b fired t2@12", "a fired t1@15", "c saw 15", "d saw 16")
	if row, _ := rowOf(t, e, "a"); row != "t1;" {
		t.Errorf("row a = %q, want the timer handler's change t1;", row)
	}
}

func TestEngineCancelledTimerDoesNotFire(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	got := mustProcess(t, e, at(10, "a", "set t 15"), at(11, "a", "cancel t"), at(20, "b", ""))
	wantEmits(t, got, "a saw 10", "a saw 11", "b saw 20")
}

func TestEngineSettingATimerAgainReplacesIt(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	got := mustProcess(t, e, at(10, "a", "set t 15"), at(11, "a", "set t 30"), at(20, "b", ""), at(30, "b", ""), at(40, "b", ""))
	wantEmits(t, got, "a saw 10", "a saw 11", "b saw 20", "a fired t@30", "b saw 30", "b saw 40")
}

func TestEngineFailedTimerUnderSkipLeavesNoEffectsAndIsDropped(t *testing.T) {
	e, _, p := newTestEngine(t, timed(), OnError(Skip))
	got := mustProcess(t, e, at(10, "a", "set bad 15"), at(20, "b", ""), at(30, "b", ""))
	wantEmits(t, got, "a saw 10", "b saw 20", "b saw 30")
	if row, ok := rowOf(t, e, "a"); ok {
		t.Errorf("row a = %q; the failed timer's change was undone, want none", row)
	}
	if s := p.Stats(); s.Skipped != 1 {
		t.Errorf("Skipped = %d, want 1", s.Skipped)
	}
}

func TestEngineFailedTimerUnderDeadLetterWritesADeadLetterOfKindTimer(t *testing.T) {
	e, _, _ := newTestEngine(t, timed(), OnError(DeadLetter("dead")))
	mustProcess(t, e, at(10, "a", "set bad 15"))
	if _, err := e.process(context.Background(), []*kgo.Record{at(20, "b", "")}); err != nil {
		t.Fatal(err)
	}
	var dead []*kgo.Record
	for _, r := range e.effects() {
		if r.Topic == "dead" {
			dead = append(dead, r)
		}
	}
	if len(dead) != 1 || string(dead[0].Key) != "a" || string(dead[0].Value) != "bad" {
		t.Fatalf("dead letters = %q, want one a:bad", values(dead))
	}
	for _, h := range dead[0].Headers {
		if h.Key == HeaderErrorKind && string(h.Value) != "timer" {
			t.Errorf("error kind = %q, want timer", h.Value)
		}
	}
}

func TestEngineFailedTimerUnderFailStopsBeforeTheRecordAndStays(t *testing.T) {
	e, st, _ := newTestEngine(t, timed())
	mustProcess(t, e, at(10, "a", "set bad 15"))
	commit(t, e)
	done, err := e.process(context.Background(), []*kgo.Record{at(20, "b", "")})
	var terr *TimerError
	if done != 0 || !errors.As(err, &terr) || terr.Key != "a" || terr.Timer.Name != "bad" {
		t.Fatalf("process = %d, %v; want 0 and the TimerError of a's timer bad", done, err)
	}
	// What the partition's next run sees: the timer is still there.
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: st, metrics: e.m})
	got, _ := e2.process(context.Background(), []*kgo.Record{at(20, "b", "")})
	if got != 0 {
		t.Errorf("restarted engine processed %d records, want the timer to fail again first", got)
	}
}

// clocked returns the engine of partition 0 of g over a memory store, whose
// wall clock is *clock.
func clocked(t *testing.T, g *Group[string], clock *time.Time, opts ...ProcessorOpt) *engine[string] {
	t.Helper()
	_, _, p := newTestEngine(t, g, opts...)
	cfg := p.engineConfig()
	cfg.now = func() time.Time { return *clock }
	var m taskMetrics
	m.init(p.metrics, 0, g.inputTopics())
	return newEngine(cfg, enginePartition{partition: 0, table: memory.New(), metrics: &m})
}

func TestEngineWallTimerFiresOnTick(t *testing.T) {
	clock := time.Unix(100, 0)
	e := clocked(t, timed(), &clock)
	mustProcess(t, e, at(10, "a", "wall w 150"), at(10, "b", "wall v 120"))
	if err := e.tick(time.Unix(110, 0)); err != nil {
		t.Fatal(err)
	}
	wantEmits(t, emitted(e.effects()))
	if err := e.tick(time.Unix(150, 0)); err != nil {
		t.Fatal(err)
	}
	wantEmits(t, emitted(e.effects()), "b fired v@120", "a fired w@150")
	if got := values(e.endBatch()); len(got) == 0 {
		t.Error("the tick's row changes are not in the changelog")
	}
}

func TestEngineIdleAdvanceFiresEventTimersWhenInputStops(t *testing.T) {
	clock := time.Unix(1000, 0)
	e := clocked(t, timed(), &clock, IdleAdvance(5*time.Second))
	mustProcess(t, e, at(10, "a", "set t 18"))
	for _, step := range []struct {
		wall int64
		want []string
	}{
		{1004, nil}, // idle 4s: not yet
		{1006, nil}, // idle 6s: stream time 16
		{1008, []string{"a fired t@18"}},
	} {
		clock = time.Unix(step.wall, 0)
		if err := e.tick(clock); err != nil {
			t.Fatal(err)
		}
		if got := emitted(e.effects()); !slices.Equal(got, step.want) {
			t.Errorf("tick at %d: emits %q, want %q", step.wall, got, step.want)
		}
	}
	if got := e.streamTime().Unix(); got != 18 {
		t.Errorf("stream time = %d, want 18, moved on by the idle wall time", got)
	}
	wantEmits(t, mustProcess(t, e, at(12, "b", "")), "b saw 18")
}

func TestEngineTimersAndStreamTimeSurviveARestart(t *testing.T) {
	e, st, _ := newTestEngine(t, timed())
	mustProcess(t, e, at(10, "a", "set t 15"), at(12, "b", ""))
	commit(t, e)
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: st, metrics: e.m})
	got := mustProcess(t, e2, at(11, "c", ""), at(15, "d", ""), at(16, "d", ""))
	wantEmits(t, got, "c saw 12", "a fired t@15", "d saw 15", "d saw 16")
}

func TestEngineDiscardedBatchDropsItsTimers(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	mustProcess(t, e, at(10, "a", "set kept 20"))
	commit(t, e)
	mustProcess(t, e, at(11, "b", "set lost 15"), at(12, "a", "cancel kept"))
	e.endBatch()
	e.discarded()
	got := mustProcess(t, e, at(30, "c", ""))
	wantEmits(t, got, "a fired kept@20", "c saw 30")
}

func TestEngineTimerKeysStayOutOfUserKeys(t *testing.T) {
	e, _, p := newTestEngine(t, timed(), OnError(Skip))
	mustProcess(t, e, at(10, reservedPrefix+"st", "x"))
	if s := p.Stats(); s.Skipped != 1 {
		t.Errorf("Skipped = %d; a record keyed in the reserved key space must fail", s.Skipped)
	}
}

func TestGroupWithTimersNeedsATable(t *testing.T) {
	g := DefineGroup[string]("t")
	Input(g, "in", codec.String(), func(*Context[string], string) error { return nil })
	OnTimer(g, func(*Context[string], Timer) error { return nil })
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "Persist") {
		t.Errorf("Validate = %v, want an error that asks for Persist", err)
	}
}

func TestEngineTimerSetForAPassedTimeFiresAtTheNextTick(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	wantEmits(t, mustProcess(t, e, at(20, "a", "set late 15")), "a saw 20")
	if err := e.tick(time.Now()); err != nil {
		t.Fatal(err)
	}
	wantEmits(t, emitted(e.effects()), "a fired late@15")
}

func TestEngineTimerOutOfRangeFailsTheRecord(t *testing.T) {
	g := DefineGroup[string]("far")
	Persist(g, codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[string], _ string) error {
		ctx.SetTimer("zero", time.Time{})
		return nil
	})
	OnTimer(g, func(*Context[string], Timer) error { return nil })
	e, _, _ := newTestEngine(t, g)
	if _, err := e.process(context.Background(), []*kgo.Record{at(10, "a", "")}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("process = %v, want the record to fail with the time out of range", err)
	}
}
