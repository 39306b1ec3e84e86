package sluice

// When a restored task's partitions are resumed. The consumer has one
// fetch in flight per broker, and a partition resumed while it is in
// flight is fetched only once it returns. A task that resumes alone while
// others still restore gets its records at once, but the next fetch, of
// partitions with nothing more to read, then waits the client's
// FetchMaxWait at the broker, and every task resuming meanwhile waits for
// it: tasks restoring side by side would each lose up to FetchMaxWait to
// the first one's fetch. The client cannot cut short a fetch in flight
// without dropping what it buffered and rewriting the offsets it commits
// (SetOffsets), so the tasks' resumes are gathered instead: a task whose
// restore ends while others of the processor still restore holds its
// resume back until the last of them ends, and no longer than FetchMaxWait,
// which is the most an early task would otherwise cost each later one.
// The tasks then resume in one call, and one fetch asks for all their
// partitions. Partitions stay paused until resumed: a held task fetches
// nothing, and a task that stops is forgotten before its partitions can be
// assigned again (see task.run), so that no late resume lets the consumer
// fetch for another task's restore.

import (
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// resumeGate gathers the resumes of a processor's tasks whose restores end
// close together. Tasks are its keys.
type resumeGate struct {
	mu      sync.Mutex
	opening map[any]bool               // tasks started and not yet restored
	held    map[any]map[string][]int32 // restored tasks' partitions, by topic
	cl      *kgo.Client                // the tasks' consumer, once one restored
	timer   *time.Timer                // resumes the held tasks at the latest
}

func newResumeGate() *resumeGate {
	return &resumeGate{
		opening: make(map[any]bool),
		held:    make(map[any]map[string][]int32),
	}
}

// started counts task as restoring. The processor calls it for every task
// of an assignment before any of them runs, so that the first to restore
// knows of the others.
func (g *resumeGate) started(task any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opening[task] = true
}

// restored resumes parts, task's partitions, on cl now if no other task is
// restoring, and otherwise once the last of them has restored or stopped,
// or after cl's FetchMaxWait, whichever comes first.
func (g *resumeGate) restored(task any, cl *kgo.Client, parts map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.opening, task)
	g.held[task] = parts
	g.cl = cl
	if len(g.opening) == 0 {
		g.resumeLocked()
		return
	}
	if g.timer == nil {
		hold, _ := cl.OptValue(kgo.FetchMaxWait).(time.Duration)
		var timer *time.Timer
		timer = time.AfterFunc(hold, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			// A timer that fired as the tasks resumed has nothing
			// left to do: later tasks have a timer of their own.
			if g.timer == timer {
				g.resumeLocked()
			}
		})
		g.timer = timer
	}
}

// forget drops task, which stopped: a resume it held back is not made,
// and the tasks waiting for its restore wait no longer.
func (g *resumeGate) forget(task any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.held, task)
	if g.opening[task] {
		delete(g.opening, task)
		if len(g.opening) == 0 {
			g.resumeLocked()
		}
	}
}

// resumeLocked resumes every held task's partitions in one call. It runs
// with mu held, so that a task forgotten is never resumed after forget
// returned.
func (g *resumeGate) resumeLocked() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if len(g.held) == 0 {
		return
	}
	all := make(map[string][]int32)
	for _, parts := range g.held {
		for topic, ps := range parts {
			all[topic] = append(all[topic], ps...)
		}
	}
	for topic := range all {
		slices.Sort(all[topic])
	}
	clear(g.held)
	g.cl.ResumeFetchPartitions(all)
}
