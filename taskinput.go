package sluice

// What the poll loop hands a task, and how: records (bounded by
// MaxBufferedBytes, so that a slow task holds no more than that of fetched
// input) and the steps of ending a transaction, both through the task's
// input channel, so that they reach the task in the order they were sent.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// delivery is what the poll loop hands a task: records of one topic
// partition with its high water mark and their size in bytes, or a step of
// the transaction protocol.
type delivery struct {
	recs  []*kgo.Record
	hwm   int64
	bytes int64
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

// deliver hands records to the task once the task holds few enough bytes
// of input to take them (MaxBufferedBytes); it returns at once if the task
// stopped. Records that alone exceed the limit are handed to a task that
// holds nothing. The task makes room by processing what it holds, which
// needs nothing of the poll loop; transaction steps (see step) carry no
// records and never wait for room.
func (t *task[V]) deliver(recs []*kgo.Record, hwm int64) {
	var n int64
	for _, r := range recs {
		n += recordBytes(r)
	}
	limit := int64(t.h.maxBufferedBytes)
	for {
		held := t.inBytes.Load()
		if held == 0 || held+n <= limit {
			if t.inBytes.CompareAndSwap(held, held+n) {
				break
			}
			continue
		}
		select {
		case <-t.room:
		case <-t.done:
			return
		}
	}
	select {
	case t.in <- delivery{recs: recs, hwm: hwm, bytes: n}:
	case <-t.done:
	}
}

// took gives back the room of a delivery the task has taken in.
func (t *task[V]) took(d delivery) {
	if d.bytes == 0 {
		return
	}
	t.inBytes.Add(-d.bytes)
	select {
	case t.room <- struct{}{}:
	default: // the poll loop has a signal to wake to already
	}
}

// recordBytes is what a fetched record counts against MaxBufferedBytes.
func recordBytes(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

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
