package sluice

// What the poll loop hands a task, and how: records (bounded by
// MaxBufferedBytes, so that a slow task holds no more than that of fetched
// input) and the steps of ending a transaction, both through the task's
// input channel, so that they reach the task in the order they were sent.

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// delivery is what the poll loop hands a task: records of one topic
// partition with its high water mark and their size in bytes, or a step of
// the transaction protocol.
type delivery struct {
	recs  []*kgo.Record
	hwm   int64
	bytes int64
	// gated: the delivery counts in the produce gate's busy until taken
	// back (producegate.go).
	gated bool
	step  *txnStep
	tick  time.Time // a tick (see tick.go), when not zero
}

// txnStep asks a task to take part in ending a transaction, and carries its
// answer.
type txnStep struct {
	kind txnStepKind
	done chan error
}

type txnStepKind int

const (
	// prepare: write the batch in hand, so that everything the task did
	// is produced and acknowledged in the transaction.
	prepare txnStepKind = iota
	// committed: the transaction committed; apply its row changes to the
	// store.
	committed
	// aborted: the transaction aborted; forget its row changes.
	aborted
)

// inputBudget bounds the fetched records a processor's tasks hold and have
// not processed, all tasks together (MaxBufferedBytes), so that the input
// held does not grow with the partitions a processor owns. The poll loop is
// its one waiter; a task gives back what it took in, and a stopped task
// what it was handed and did not take in.
type inputBudget struct {
	limit int64
	held  atomic.Int64
	room  chan struct{} // signalled when held falls
}

func newInputBudget(limit int) *inputBudget {
	return &inputBudget{limit: int64(limit), room: make(chan struct{}, 1)}
}

// acquire waits until n bytes fit in the budget, or nothing is held: a
// fetch larger than the whole budget is still handed on, alone. It returns
// false if stopped is closed first.
func (b *inputBudget) acquire(n int64, stopped <-chan struct{}) bool {
	for {
		held := b.held.Load()
		if held == 0 || held+n <= b.limit {
			if b.held.CompareAndSwap(held, held+n) {
				return true
			}
			continue
		}
		select {
		case <-b.room:
		case <-stopped:
			return false
		}
	}
}

func (b *inputBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.held.Add(-n)
	select {
	case b.room <- struct{}{}:
	default: // the poll loop has a signal to wake to already
	}
}

// deliver hands records to the task once the processor's tasks hold few
// enough bytes of input to take them (MaxBufferedBytes); it returns at once
// if the task stopped. The tasks make room by processing what they hold,
// which needs nothing of the poll loop; transaction steps (see step) carry
// no records and never wait for room.
func (t *task[V]) deliver(recs []*kgo.Record, hwm int64) {
	var n int64
	for _, r := range recs {
		n += recordBytes(r)
	}
	if !t.h.input.acquire(n, t.done) {
		return
	}
	t.h.gate.handing()
	select {
	case t.in <- delivery{recs: recs, hwm: hwm, bytes: n, gated: true}:
		select {
		case <-t.done:
			// The task may have stopped before it could see this
			// delivery: it must not keep its room.
			t.drop()
		default:
		}
	case <-t.done:
		t.h.input.release(n)
		t.h.gate.taken(1)
	}
}

// took gives back the room of a delivery the task has taken in, and counts
// it back in the produce gate: what the task produced for it may leave.
func (t *task[V]) took(d delivery) {
	t.h.input.release(d.bytes)
	if d.gated {
		t.h.gate.taken(1)
	}
}

// drop gives back the room of the deliveries a stopped task left waiting.
// The task calls it once it stopped taking deliveries, and deliver once it
// sees the task stopped after handing it one, so that whichever comes last
// finds each delivery still waiting: a delivery is received, and its room
// given back, once.
func (t *task[V]) drop() {
	for {
		select {
		case d := <-t.in:
			t.took(d)
		default:
			return
		}
	}
}

// recordBytes is what a fetched record counts against MaxBufferedBytes: the
// memory it takes, its bytes and the client's structures for it. A record
// of the count group's size (a short key, 100 bytes of value) takes more
// memory in its structures than in its bytes: counting the bytes alone
// would let the tasks hold more than twice the budget.
func recordBytes(r *kgo.Record) int64 {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// recordOverhead is the memory a fetched record takes besides its bytes:
// the client's Record and the pointer to it in its partition's records.
// headerOverhead is that of each of its headers.
const (
	recordOverhead = int(unsafe.Sizeof(kgo.Record{}) + unsafe.Sizeof(&kgo.Record{}))
	headerOverhead = int(unsafe.Sizeof(kgo.RecordHeader{}))
)

// step runs one step of ending a transaction in the task, after the records
// delivered before it. A task that stopped has nothing to add: its work is
// either in the transaction already or aborted with it.
func (t *task[V]) step(kind txnStepKind) error {
	s := &txnStep{kind: kind, done: make(chan error, 1)}
	select {
	case t.in <- delivery{step: s}:
	case <-t.done:
		return nil
	}
	select {
	case err := <-s.done:
		return err
	case <-t.done:
		return nil
	}
}

// fetchMaxBytes is the most a processor's client fetches from a broker at
// once (kgo.FetchMaxBytes), given its MaxBufferedBytes: a quarter of it,
// between 1 MiB (what a partition gives a fetch by default) and kgo's
// default of 50 MiB. The client keeps a fetch from every broker ready for
// the next poll while the tasks work through their budget, and reads the
// next; with kgo's default, what a broker serving many of the processor's
// partitions sends, decompressed, outgrew the budget.
func fetchMaxBytes(maxBuffered int) int32 {
	return int32(min(max(maxBuffered/4, 1<<20), 50<<20))
}

// produceMaxBufferedBytes is how many bytes of records a processor's client
// holds produced and not yet acknowledged (kgo.MaxBufferedBytes), given its
// MaxBufferedBytes: as many, and at least 1 MiB, so that no record the
// client would send (kgo.ProducerBatchMaxBytes is about 1 MB by default)
// is failed for being larger than that. kgo bounds the records buffered
// (50,000) but not their bytes: without it, a handler that emits large
// records would hold up to 50,000 of them.
func produceMaxBufferedBytes(maxBuffered int) int {
	return max(maxBuffered, 1<<20)
}
