package sluicetest

import (
	"fmt"
	"math"
	"time"
)

// The times stream time can be, as it is kept in Unix nanoseconds.
var (
	minStreamTime = time.Unix(0, math.MinInt64+1)
	maxStreamTime = time.Unix(0, math.MaxInt64-1)
)

// Now returns the wall clock the group's engines see: the Clock option's
// time, moved on by AdvanceClock. The wall clock does not move by itself, so
// a test is the same whenever it runs.
func (d *Driver) Now() time.Time { return d.clock }

func (d *Driver) now() time.Time { return d.clock }

// AdvanceClock moves the wall clock on by step and lets every partition
// engine tick at the new time, as a processor's tasks do every 100 ms: the
// wall-clock timers due fire (SetWallTimer), and with IdleAdvance the stream
// time of a partition idle for long enough follows the clock, firing the
// event-time timers and closing the windows it passes. Records there are
// to read (after Crash, Rebalance or Abort) are processed first, at the
// clock as it was, as a processor reads them before time goes on. What the
// timer handlers do is committed as a batch, unless ManualCommit is given.
// Stream time also moves with the timestamps of the records sent
// (WithTimestamp).
func (d *Driver) AdvanceClock(step time.Duration) error {
	if step < 0 {
		return fmt.Errorf("sluicetest: the clock does not go back (step %v)", step)
	}
	d.looped = 0
	if err := d.pump(); err != nil {
		return d.stopped(err)
	}
	d.clock = d.clock.Add(step)
	for _, p := range d.parts {
		p.work = true
		err := p.eng.Tick(d.clock)
		d.writeEffects(p)
		if err != nil {
			return d.stopped(err)
		}
	}
	if err := d.pump(); err != nil {
		return d.stopped(err)
	}
	if d.manual {
		return nil
	}
	return d.Commit()
}

// AdvanceStreamTime moves the stream time of every partition to t, if it
// is later, as a record at t would before its handler runs, but without a
// record: the windows whose end plus grace it reaches close, so their
// final results are in the output, and the event-time timers it reaches
// fire. A processor's stream time moves only with records (and with
// IdleAdvance); this is the test's shortcut to "later records came", so
// the records there are to read (after Crash, Rebalance or Abort) are
// processed first, as records before those. What it leads to is
// committed, unless ManualCommit is given. t must lie between the years
// 1678 and 2262, the times stream time is kept in.
func (d *Driver) AdvanceStreamTime(t time.Time) error {
	if t.Before(minStreamTime) || t.After(maxStreamTime) {
		return fmt.Errorf("sluicetest: stream time %v is out of range (%s to %s)", t,
			minStreamTime.UTC().Format(time.RFC3339), maxStreamTime.UTC().Format(time.RFC3339))
	}
	d.looped = 0
	if err := d.pump(); err != nil {
		return d.stopped(err)
	}
	for _, p := range d.parts {
		p.work = true
		err := p.eng.AdvanceStreamTime(t)
		d.writeEffects(p)
		if err != nil {
			return d.stopped(err)
		}
	}
	if err := d.pump(); err != nil {
		return d.stopped(err)
	}
	if d.manual {
		return nil
	}
	return d.Commit()
}
