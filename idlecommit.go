package sluice

// At least once, the client commits marked offsets every CommitInterval; a
// processor whose input went idle would leave its last records uncommitted
// for up to that long, their effects long written: a restart would process
// them again, and the group's lag says they are not done. So when every
// task has marked the offset of everything it was handed, up to the high
// water mark of the fetch that brought it, and no write is in flight nor
// batch in hand, the processor commits the marked offsets at once, as the
// client's autocommit would (CommitOffsets, ordered with every other
// commit of the client).
//
// Invariants:
//   - Only marked offsets are committed, and a task marks an offset only
//     once the effects of the records before it are durable and in its
//     store: an early commit commits nothing the interval's would not.
//   - A task's idle flag is written by its own goroutine only: set when it
//     marks the last offset it was handed, cleared when it takes records.
//     Records handed and not yet taken are in its input channel, which the
//     check reads too; a commit that races with a delivery commits
//     offsets that are durable all the same.
//   - Early commits are at least idleCommitSpacing apart: at a low, steady
//     load, where every task is idle between records, they cost a bounded
//     number of commits per CommitInterval, not one per record. A task
//     that becomes idle within the spacing gets the commit when it ends.

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// idleCommitsPerInterval is how many early commits a processor may make per
// CommitInterval, besides the interval's own.
const idleCommitsPerInterval = 4

// idleInput is what a task keeps to tell that it marked everything it was
// handed.
type idleInput struct {
	// The high water mark of the last fetch handed, and the offset last
	// marked, by input topic.
	end, marked map[string]int64
}

func (in *idleInput) init() {
	in.end = make(map[string]int64)
	in.marked = make(map[string]int64)
}

// tookInput notes records the task takes: it is not idle until their
// offsets, up to the high water mark d was fetched with, are marked.
func (t *task[V]) tookInput(d delivery) {
	t.idle.Store(false)
	topic := d.recs[0].Topic
	t.input.end[topic] = max(t.input.end[topic], d.hwm)
}

// markedInput notes the offsets the task marked, and has the processor
// commit at once if the task is idle now, with every other task.
func (t *task[V]) markedInput(marks map[string]kgo.EpochOffset) {
	for topic, eo := range marks {
		t.input.marked[topic] = eo.Offset
		if _, handed := t.input.end[topic]; !handed {
			return // records that did not come through take
		}
	}
	if t.batched > 0 || t.sent != nil || t.later.on || len(t.in) > 0 {
		return
	}
	for topic, end := range t.input.end {
		if t.input.marked[topic] < end {
			return
		}
	}
	t.idle.Store(true)
	if t.h.idle != nil {
		t.h.idle.taskIdle()
	}
}

// idleCommits commits a processor's marked offsets when all its tasks are
// idle.
type idleCommits[V any] struct {
	p       *Processor[V]
	spacing time.Duration

	mu sync.Mutex
	// A commit runs or waits for the spacing (running), and another
	// is due once it is done (again).
	running, again bool
	last           time.Time
}

func newIdleCommits[V any](p *Processor[V]) *idleCommits[V] {
	return &idleCommits[V]{p: p, spacing: p.cfg.commitInterval / idleCommitsPerInterval}
}

// taskIdle commits the marked offsets if every task is idle: at once, or
// once the spacing since the last early commit has passed.
func (c *idleCommits[V]) taskIdle() {
	if !c.allIdle() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		c.again = true
		return
	}
	c.running = true
	// Not in the task's goroutine: a commit waits for a rebalance that
	// may wait for the task.
	go c.commit()
}

// allIdle reports whether every task of the processor is idle: a task
// that restores its tables has its records to come.
func (c *idleCommits[V]) allIdle() bool {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false // Run's own final commit follows
	}
	for _, t := range p.tasks {
		if !t.active.Load() || !t.idle.Load() || len(t.in) > 0 {
			return false
		}
	}
	return true
}

// commit commits the marked offsets, and again while tasks became idle
// during a commit, each at least the spacing after the one before.
func (c *idleCommits[V]) commit() {
	p := c.p
	ctx := p.host.ccBook.commitCtx(p.ctx)
	for {
		if wait := c.spacing - time.Since(c.last); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
			}
		}
		c.last = time.Now()
		if ctx.Err() == nil {
			if marked := p.cl.MarkedOffsets(); len(marked) > 0 {
				done := make(chan struct{})
				p.cl.CommitOffsets(ctx, marked, func(cl *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
					p.metrics.committed(cl, req, resp, err)
					close(done)
				})
				<-done
			}
		}
		c.mu.Lock()
		if !c.again || ctx.Err() != nil {
			c.running, c.again = false, false
			c.mu.Unlock()
			return
		}
		c.again = false
		c.mu.Unlock()
	}
}
