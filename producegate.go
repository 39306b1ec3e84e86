package sluice

// How the records the tasks of one poll produce leave in few produce
// requests. The client sends what it has buffered as soon as a record
// arrives and a request can go: ten tasks producing at their own moments,
// woken by one poll, made as many requests, each with its write syscall,
// its response and its wake-ups, where a client producing a poll's records
// in one loop makes one. So the records a task produces wait in the
// processor's produce gate while any delivery handed out by the poll loop
// is still being processed, and the last task to finish one hands them all
// to the client at once.
//
// Invariants:
//   - A task's records reach the client in the order it produced them:
//     they are handed on in one queue, by one sender at a time.
//   - A record never waits for a task that waits itself: a task about to
//     wait for its records to be acknowledged sends the queue first, and a
//     record waits at most gateDelay for a task busy with a delivery (a
//     handler that takes long).
//   - busy counts the deliveries of records handed to a task and not yet
//     taken back (took, drop), plus those being handed: it falls to zero
//     only when every task is done with what it was given.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// gateDelay is the longest a record waits in the produce gate for the
// other tasks of its poll to finish.
const gateDelay = time.Millisecond

// gateRecords is the most records the produce gate holds: that many fill
// requests whose cost is their records' rather than their own. Reading a
// backlog, some task is always busy with a delivery, and the records of
// each leave once they are that many rather than after gateDelay, which
// would hold the acknowledgements the tasks' writes wait for.
const gateRecords = 256

// gatedRecord is a record waiting in the produce gate, with its promise.
type gatedRecord struct {
	r       *kgo.Record
	promise func(*kgo.Record, error)
}

// produceGate holds the records of a processor's tasks while deliveries are
// being processed, and hands them to the client together.
type produceGate struct {
	ctx  context.Context // the records' context: the run's writeCtx
	cl   atomic.Pointer[kgo.Client]
	busy atomic.Int64 // deliveries handed to tasks and not yet taken back

	mu    sync.Mutex // guards queue
	queue []gatedRecord

	// sending is held while the queue is handed to the client, so that
	// queues are handed on in the order they were taken.
	sending sync.Mutex
	spare   []gatedRecord // the last queue handed on, reused; guarded by sending

	armed atomic.Bool // timer runs
	timer *time.Timer
	delay time.Duration // gateDelay
}

func newProduceGate(ctx context.Context) *produceGate {
	g := &produceGate{ctx: ctx, delay: gateDelay}
	g.timer = time.AfterFunc(time.Hour, func() {
		g.armed.Store(false)
		g.send()
	})
	g.timer.Stop()
	return g
}

// produce hands r to the client, at once if no delivery is being processed
// or gateRecords wait, and otherwise once none is, or after gateDelay.
func (g *produceGate) produce(cl *kgo.Client, r *kgo.Record, promise func(*kgo.Record, error)) {
	if g.cl.Load() == nil {
		g.cl.Store(cl)
	}
	g.mu.Lock()
	g.queue = append(g.queue, gatedRecord{r: r, promise: promise})
	full := len(g.queue) >= gateRecords
	g.mu.Unlock()
	if full || g.busy.Load() == 0 {
		g.send()
		return
	}
	g.arm()
}

// handing counts a delivery about to be handed to a task.
func (g *produceGate) handing() { g.busy.Add(1) }

// taken counts n deliveries back, processed or dropped: the last one hands
// what waits to the client.
func (g *produceGate) taken(n int) {
	if g.busy.Add(-int64(n)) == 0 {
		g.send()
	}
}

// arm starts the timer that hands on what waits after gateDelay, unless it
// runs.
func (g *produceGate) arm() {
	if !g.armed.Load() && g.armed.CompareAndSwap(false, true) {
		g.timer.Reset(g.delay)
	}
}

// send hands every record waiting to the client, in order.
func (g *produceGate) send() {
	g.sending.Lock()
	defer g.sending.Unlock()
	// The timer stops before the queue is taken: a record queued after it
	// finds the timer stopped and starts it again, and one queued before
	// is sent now.
	if g.armed.Load() && g.armed.CompareAndSwap(true, false) {
		g.timer.Stop()
	}
	g.mu.Lock()
	q := g.queue
	g.queue = g.spare[:0]
	g.mu.Unlock()
	if len(q) == 0 {
		g.spare = q
		return
	}
	cl := g.cl.Load()
	for _, e := range q {
		cl.Produce(g.ctx, e.r, e.promise)
	}
	// The records are the client's now: the queue must not keep them.
	clear(q)
	g.spare = q[:0]
}
