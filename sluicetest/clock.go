package sluicetest

import (
	"fmt"
	"time"
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
// event-time timers and closing the windows it passes. What the timer handlers do is committed as a
// batch, unless ManualCommit is given. Stream time also moves with the
// timestamps of the records sent (WithTimestamp).
func (d *Driver) AdvanceClock(step time.Duration) error {
	if step < 0 {
		return fmt.Errorf("sluicetest: the clock does not go back (step %v)", step)
	}
	d.clock = d.clock.Add(step)
	d.looped = 0
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
