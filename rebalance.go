package sluice

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func (p *Processor[V]) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	numbers := partitionNumbers(assigned)
	// Once the tasks are set, and p.mu is released.
	defer p.followStandbys()
	p.strategy.assigned()
	p.rebalances.Add(1)
	p.logger.Info("partitions assigned", "partitions", numbers)
	// A task of a partition assigned anew was not told it lost the
	// partition (exactly once, the client reports only the first
	// revocation of a transaction). Its rows may be stale: it stops,
	// dropping its work, and a new task restores.
	if stale := p.takeTasks(numbers); len(stale) > 0 {
		p.logger.Warn("partitions assigned again without being released; restarting their tasks", "tasks", len(stale))
		p.stopTasks(stale, false)
	}
	// One request, only for a group with a concurrent input.
	resume := p.concurrentResume(ctx, cl, assigned)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		// Assigned while leaving: whoever owns them next processes them.
		return
	}
	tasks := maps.Clone(p.tasks)
	var started []*task[V]
	pause := make(map[string][]int32)
	for _, n := range numbers {
		t := newTask(p.host, cl, n)
		t.ccResume = resume[n]
		tasks[n] = t
		started = append(started, t)
		for topic, ps := range assigned {
			if slices.Contains(ps, n) {
				pause[topic] = append(pause[topic], n)
			}
		}
	}
	// A new task's partitions fetch nothing until it has restored its
	// tables; it resumes them itself, along with the tasks restoring with
	// it (resumegate.go), which is why all are counted before any runs.
	cl.PauseFetchPartitions(pause)
	p.tasks = tasks
	for _, t := range started {
		p.host.resumes.started(t)
	}
	for _, t := range started {
		go t.run()
	}
}

// followStandbys starts and stops the processor's warm copies to match its
// last assignment.
func (p *Processor[V]) followStandbys() {
	if p.standbys == nil {
		return
	}
	p.mu.Lock()
	closing := p.closing
	owned := make(map[int32]bool, len(p.tasks))
	for n := range p.tasks {
		owned[n] = true
	}
	p.mu.Unlock()
	if !closing {
		p.standbys.follow(owned)
	}
}

// revoked and lost are called by the client during a rebalance. Exactly
// once, the client's transaction session calls them only for the first
// revocation and the first loss of a transaction, and aborts that
// transaction; so the poll loop is woken to end it at once, and assigned
// checks for tasks that missed a revocation. The poll loop committed the
// work before it let the callback run (see poll), so what aborts is empty
// unless the member was dropped from the group.
func (p *Processor[V]) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	p.release(ctx, cl, revoked, true)
	if len(revoked) > 0 {
		p.strategy.partitionsLeft()
	}
}

func (p *Processor[V]) lost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	p.release(ctx, cl, lost, false)
	// The session marks its transaction lost even when nothing was lost
	// (as after a second failed join): end it before more work goes in.
	p.strategy.partitionsLeft()
}

// release stops the tasks of partitions this processor no longer owns. When
// commit is set (a revoke, not a loss), what they finished is committed
// before the partitions can move.
func (p *Processor[V]) release(ctx context.Context, cl *kgo.Client, parts map[string][]int32, commit bool) {
	numbers := partitionNumbers(parts)
	if len(numbers) == 0 {
		return
	}
	p.logger.Info("partitions released", "partitions", numbers, "revoked", commit)
	stopping := p.takeTasks(numbers)
	p.strategy.release(ctx, cl, parts, stopping, commit)
}

// takeTasks removes the tasks of the given partitions, if any, and returns
// them. The map is replaced, not changed: the poll loop reads it unlocked.
func (p *Processor[V]) takeTasks(numbers []int32) []*task[V] {
	p.mu.Lock()
	defer p.mu.Unlock()
	tasks := maps.Clone(p.tasks)
	var taken []*task[V]
	for _, n := range numbers {
		if t := tasks[n]; t != nil {
			taken = append(taken, t)
			delete(tasks, n)
		}
	}
	p.tasks = tasks
	return taken
}

func (p *Processor[V]) allTasks() []*task[V] {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := slices.Collect(maps.Values(p.tasks))
	p.tasks = make(map[int32]*task[V])
	return ts
}

// stopTasks stops tasks concurrently and waits for them, no longer than the
// shutdown timeout and abandonedGrace. With flush set they write and mark
// what they processed; without, they drop it. A task's waits for Kafka are
// bounded (see task.waitAcknowledged), so only a handler that does not
// return keeps a task from stopping; it is left to finish on its own.
//
// A stop of the processor abandons its writes at the shutdown timeout (see
// Run), which ends the waits of the tasks for Kafka: the grace lets them
// return then and fail the run with what they left unwritten, so that Run
// does not return nil, with tasks still running, for a stop that gave up work.
func (p *Processor[V]) stopTasks(ts []*task[V], flush bool) {
	for _, t := range ts {
		t.requestStop(flush)
	}
	timeout := time.NewTimer(p.cfg.shutdownTimeout + abandonedGrace)
	defer timeout.Stop()
	for i, t := range ts {
		select {
		case <-t.done:
		case <-timeout.C:
			var left []int32
			for _, t := range ts[i:] {
				select {
				case <-t.done:
				default:
					left = append(left, t.partition)
				}
			}
			p.logger.Error("tasks did not stop in time; leaving them", "partitions", left, "timeout", p.cfg.shutdownTimeout)
			return
		}
	}
}

// abandonedGrace is how long stopTasks waits, beyond the shutdown timeout,
// for tasks whose writes were abandoned to return.
const abandonedGrace = time.Second

func (p *Processor[V]) activeTasks() []*task[V] {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ts []*task[V]
	for _, t := range p.tasks {
		if t.active.Load() {
			ts = append(ts, t)
		}
	}
	return ts
}

// partitionNumbers returns the distinct partition numbers across topics.
func partitionNumbers(parts map[string][]int32) []int32 {
	set := make(map[int32]struct{})
	for _, ps := range parts {
		for _, n := range ps {
			set[n] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}
