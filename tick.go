package sluice

// Ticks: how the Kafka driver fires a partition's wall-clock timers and
// moves the stream time of an idle partition (IdleAdvance). The poll loop
// hands every active task of a group with a timer handler a tick every
// tickInterval, on the task's input channel like its records, so that a tick
// runs on the task's goroutine between its records and, exactly once, never
// while a transaction ends: the poll loop, which ends them, is the one that
// sends ticks, and a task takes a tick sent before a transaction step first.
// What a tick writes is a batch like any other; exactly once, the poll loop
// learns of it (tickWrote) and gives the open transaction work to commit.

import (
	"context"
	"time"
)

// tickInterval is how often wall-clock timers are checked.
const tickInterval = 100 * time.Millisecond

// ticking reports whether the processor's tasks need ticks: for timers, and
// for windows to close on idle partitions (IdleAdvance).
func (p *Processor[V]) ticking() bool {
	return p.g.onTimer != nil || len(p.g.windows) > 0 && p.cfg.idleAdvance > 0
}

// tickPoll bounds a poll so that the poll loop sends the next ticks on
// time.
func (p *Processor[V]) tickPoll(ctx context.Context, last time.Time) (context.Context, context.CancelFunc) {
	if !p.ticking() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, last.Add(tickInterval))
}

// sendTicks hands a tick to every active task once tickInterval has passed
// since last, and returns when it last did. A task whose input is full is
// busy with records and gets the next tick instead. It also reports to the
// strategy the ticks that wrote something since it last looked.
func (p *Processor[V]) sendTicks(tasks map[int32]*task[V], last time.Time) time.Time {
	if !p.ticking() {
		return last
	}
	wrote := false
	for _, t := range tasks {
		if t.tickWrote.Swap(false) {
			wrote = true
		}
	}
	if wrote {
		p.strategy.tickWrote()
	}
	now := time.Now()
	if now.Sub(last) < tickInterval {
		return last
	}
	for _, t := range tasks {
		if !t.active.Load() {
			continue
		}
		select {
		case t.in <- delivery{tick: now}:
		default:
		}
	}
	return now
}

// onTick runs a tick in the task: the engine fires what is due at now, and
// the task writes it as a batch. Under Fail, what came before the failed
// timer is written and the error stops the partition.
func (t *task[V]) onTick(now time.Time) error {
	err := t.e.tick(now)
	out := t.e.effects()
	for _, r := range out {
		t.produce(r)
	}
	if err == nil && len(out) == 0 && !t.e.changed() {
		return nil
	}
	t.tickWrote.Store(true)
	if ferr := t.flush(); ferr != nil {
		if err != nil {
			return err
		}
		return ferr
	}
	return err
}
