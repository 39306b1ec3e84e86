package progress

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWatchRestoreDrawsUntilTheRestoreEnds(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
	)
	states := []RestoreState{
		{}, // not assigned yet
		{Restored: 0, Total: 1000, Restoring: true},
		{Restored: 400, Total: 2000, Restoring: true}, // a second partition
		{Restored: 2000, Total: 2000},
	}
	var out bytes.Buffer
	WatchRestore(context.Background(), &out, time.Millisecond, func() RestoreState {
		mu.Lock()
		defer mu.Unlock()
		s := states[min(calls, len(states)-1)]
		calls++
		return s
	})
	got := out.String()
	if !strings.Contains(got, "2,000") && !strings.Contains(got, "2000") {
		t.Errorf("final line does not show the 2000 records restored: %q", got)
	}
	if !strings.Contains(got, "100%") {
		t.Errorf("final line is not at 100%%: %q", got)
	}
}

func TestWatchRestoreDrawsNothingWhenUpToDate(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	WatchRestore(ctx, &out, time.Millisecond, func() RestoreState { return RestoreState{} })
	if out.Len() != 0 {
		t.Errorf("drew %q with nothing to restore", out.String())
	}
}
