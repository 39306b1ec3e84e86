package sluice

// Tests of what setting a timer writes and holds: no rows for a timer set
// again for its time, and no room in the row cache once its rows are
// applied.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/codec"
)

// timerRows returns the changelog records of recs that are timer rows.
func timerRows(t *testing.T, e *engine[string]) []string {
	t.Helper()
	var keys []string
	for _, r := range e.endBatch() {
		if pinnedOnly(string(r.Key)) {
			keys = append(keys, fmt.Sprintf("%q", r.Key))
		}
	}
	return keys
}

func TestEngineSettingATimerForTheTimeItIsSetForWritesNoRows(t *testing.T) {
	e, _, _ := newTestEngine(t, timed())
	mustProcess(t, e, at(10, "a", "set t 30"))
	commit(t, e)
	// Set again in a batch of its own, and again after it changed in the
	// same batch.
	mustProcess(t, e, at(10, "a", "set t 30"))
	if rows := timerRows(t, e); len(rows) != 0 {
		t.Errorf("the timer set again for its time wrote %s, want no rows", strings.Join(rows, ", "))
	}
	if err := e.applied(2); err != nil {
		t.Fatal(err)
	}
	mustProcess(t, e, at(10, "a", "set t 40"), at(10, "a", "set t 40"))
	if rows := timerRows(t, e); len(rows) != 3 {
		t.Errorf("the timer moved, then set again for its new time, wrote %s; want its old entry deleted, its new one and its index", strings.Join(rows, ", "))
	}
	if err := e.applied(3); err != nil {
		t.Fatal(err)
	}
	got := mustProcess(t, e, at(30, "b", ""), at(40, "b", ""))
	wantEmits(t, got, "b saw 30", "a fired t@40", "b saw 40")
}

// rowsAndTimers is a group whose every record sets its key's row to its
// value and the key's timer "t" to a second later.
func rowsAndTimers() *Group[string] {
	g := DefineGroup[string]("rows-and-timers")
	Persist(g, codec.String())
	out := Output(g, "out", codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[string], v string) error {
		ctx.SetValue(v)
		ctx.SetTimer("t", ctx.Timestamp().Add(time.Second))
		return nil
	})
	OnTimer(g, func(ctx *Context[string], t Timer) error {
		v, _ := ctx.Value()
		return out.Emit(ctx, ctx.Key(), ctx.Key()+" fired with "+v)
	})
	return g
}

func TestEngineTimersPushNoTableRowsOutOfTheRowCache(t *testing.T) {
	const keys = 5
	// Room for the table's rows and the stream time, not for the timers'
	// rows too: two for each timer set.
	e, st, _ := newTestEngine(t, rowsAndTimers(), CacheRows(keys+1))
	for k := range keys {
		mustProcess(t, e, at(10, fmt.Sprintf("k%d", k), fmt.Sprintf("v%d", k)))
	}
	commit(t, e)
	for k := range keys {
		if _, held := e.rows.peek(fmt.Sprintf("k%d", k)); !held {
			t.Errorf("row k%d left the row cache; the timers' rows took its room", k)
		}
	}
	for key := range e.rows.evicted {
		t.Errorf("row %q held once applied", key)
	}
	if n := len(st.changes); n != 1 || len(st.changes[0]) != 1+3*keys {
		t.Fatalf("store applies %d, want one of the rows, the timers and stream time", n)
	}
	got := mustProcess(t, e, at(12, "x", "y"))
	wantEmits(t, got, "k0 fired with v0", "k1 fired with v1", "k2 fired with v2", "k3 fired with v3", "k4 fired with v4")
}
