package sluice

// Tests of what the row cache keeps once a batch is applied.

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice/codec"
)

func TestEngineClosedWindowsLeaveTheRowCacheOnceTheirRowsAreDeleted(t *testing.T) {
	g := DefineGroup[string]("w")
	out := Output(g, "out", codec.String())
	a := Aggregate(g, "counts", Tumbling(10*time.Second), countOf[string](), func(ctx *Context[string], r WindowResult[int64]) error {
		return out.Emit(ctx, r.Key, fmt.Sprintf("%s %d", r.Key, r.Value))
	})
	WindowedInput(g, "in", codec.String(), a)
	e, _, _ := newTestEngine(t, g)
	mustProcess(t, e, at(1, "a", ""), at(2, "b", ""), at(3, "a", ""))
	commit(t, e)
	wantEmits(t, mustProcess(t, e, at(12, "c", "")), "a 2", "b 1")
	commit(t, e)
	held := 0
	for k := range e.rows.win.m {
		_, key, w, ok := parseWindowRowKey(k)
		if !ok {
			continue
		}
		held++
		if !w.End.After(time.Unix(10, 0)) {
			t.Errorf("the row of %s's closed window %v is held once deleted", key, w)
		}
	}
	if held != 1 {
		t.Errorf("%d window rows held, want c's open one", held)
	}
	// The windows closed stay closed, and the open one counts on.
	wantEmits(t, mustProcess(t, e, at(13, "c", ""), at(21, "d", "")), "c 2")
}
