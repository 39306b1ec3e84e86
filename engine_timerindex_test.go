package sluice

// Tests of the engine's in-memory index of its partition's timers: setting
// and cancelling a timer reads no row of the store while the index holds
// every timer, and the timers stay right when it cannot.

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sluice-io/sluice/store"
)

// timerReads counts the reads of timer rows (schedule and index entries)
// from the store it wraps.
type timerReads struct {
	store.Store
	n int
}

func (s *timerReads) Get(key []byte) ([]byte, error) {
	if bytes.HasPrefix(key, []byte(reservedPrefix)) && !bytes.Equal(key, []byte(streamTimeKey)) {
		s.n++
	}
	return s.Store.Get(key)
}

// newTimerReadsEngine is newTestEngine with the store wrapped in a
// timerReads.
func newTimerReadsEngine(t *testing.T, opts ...ProcessorOpt) (*engine[string], *timerReads, *applyLog) {
	t.Helper()
	e, log, _ := newTestEngine(t, timed(), opts...)
	reads := &timerReads{Store: log}
	return newEngine(e.cfg, enginePartition{partition: 0, table: reads, metrics: e.m}), reads, log
}

func TestEngineSettingTimersReadsNoTimerRowFromTheStore(t *testing.T) {
	e, reads, _ := newTimerReadsEngine(t, CacheRows(3))
	// Many keys, more than the row cache holds, set, replace, cancel and
	// fire timers over several batches.
	for b := range 4 {
		for k := range 10 {
			key := fmt.Sprintf("k%d", k)
			sec := int64(10*b + k)
			mustProcess(t, e, at(sec, key, fmt.Sprintf("set t %d", sec+15)))
			mustProcess(t, e, at(sec, key, fmt.Sprintf("set t %d", sec+5)))
			if k%3 == 0 {
				mustProcess(t, e, at(sec, key, "cancel t"))
			}
		}
		commit(t, e)
	}
	if reads.n != 0 {
		t.Errorf("%d reads of timer rows from the store; the engine knows its partition's timers", reads.n)
	}
	// A new engine on the same store, as after a restart, knows them too.
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: reads, metrics: e.m})
	mustProcess(t, e2, at(40, "k1", "set t 100"), at(40, "new", "set t 100"))
	commit(t, e2)
	if reads.n != 0 {
		t.Errorf("%d reads of timer rows from the store after a restart", reads.n)
	}
}

func TestEngineTimerSetBeforeARestartIsReplacedOnceAfterIt(t *testing.T) {
	e, reads, _ := newTimerReadsEngine(t)
	mustProcess(t, e, at(10, "a", "set t 20"), at(10, "b", "set t 25"))
	commit(t, e)
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: reads, metrics: e.m})
	mustProcess(t, e2, at(11, "a", "set t 30"), at(12, "b", "cancel t"))
	commit(t, e2)
	e3 := newEngine(e.cfg, enginePartition{partition: 0, table: reads, metrics: e.m})
	got := mustProcess(t, e3, at(21, "c", ""), at(26, "c", ""), at(31, "c", ""), at(40, "c", ""))
	wantEmits(t, got, "c saw 21", "c saw 26", "a fired t@30", "c saw 31", "c saw 40")
}

func TestEngineTimersStayRightWhenThereAreMoreThanItsIndexHolds(t *testing.T) {
	// CacheRows(1) bounds the index to a few timers, far fewer than set.
	e, reads, _ := newTimerReadsEngine(t, CacheRows(1))
	for k := range 20 {
		key := fmt.Sprintf("k%02d", k)
		mustProcess(t, e, at(10, key, "set t 50"))
		if k%2 == 0 {
			mustProcess(t, e, at(10, key, fmt.Sprintf("set t %d", 20+k)))
		}
	}
	commit(t, e)
	// Replaced and cancelled after a restart, with the index over its
	// bound: the earlier timers are found in the store.
	e2 := newEngine(e.cfg, enginePartition{partition: 0, table: reads, metrics: e.m})
	mustProcess(t, e2, at(11, "k19", "cancel t"), at(11, "k18", "set t 55"))
	commit(t, e2)
	if reads.n == 0 {
		t.Error("no timer row read from the store; over its bound the index must fall back to the store")
	}
	var want []string
	for k := 0; k < 18; k += 2 {
		want = append(want, fmt.Sprintf("k%02d fired t@%d", k, 20+k))
	}
	for k := 1; k < 19; k += 2 {
		want = append(want, fmt.Sprintf("k%02d fired t@50", k))
	}
	want = append(want, "k18 fired t@55", "x saw 60")
	wantEmits(t, mustProcess(t, e2, at(60, "x", "")), want...)
}
