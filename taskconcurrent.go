package sluice

// The Kafka task's side of concurrent inputs (engineconcurrent.go): it hands
// their records to the engine, which queues what it has no room for, takes
// back the records the engine's workers finished, and writes what they
// released. At least once, the emits of a record are produced when it
// finishes and the offsets below the lowest unfinished record are marked
// once they are acknowledged, with a note of the records finished above
// it for the commit's metadata (concurrentresume.go). Exactly once, the
// emits of the records finished are produced when the transaction is about
// to end (prepare), which also sets the offsets and metadata the
// transaction commits (eosconcurrent.go):
// the task produces nothing between the end of one transaction and the
// beginning of the next.
//
// Records queued in the engine still count against MaxBufferedBytes, so the
// poll loop hands the task no more than that while its records wait.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"
)

// handConcurrent hands recs, which all come from one partition of a
// concurrent input, to the engine.
func (t *task[V]) handConcurrent(recs []*kgo.Record) error {
	err := t.e.handConcurrent(recs)
	return t.afterConcurrent(err)
}

// onFinished takes back c, and every other record finished by now, and
// writes what they released.
func (t *task[V]) onFinished(c *ccRecord) error {
	err := t.e.finished(c)
	for more := true; more && err == nil; {
		select {
		case c := <-t.e.concurrentDone():
			err = t.e.finished(c)
		default:
			more = false
		}
	}
	if err = t.afterConcurrent(err); err != nil {
		return err
	}
	if book := t.h.ccBook; book != nil {
		// At least once, once the emits of the finished records are
		// acknowledged and the offsets marked, the client's next commit
		// lists them.
		if err := t.flush(); err != nil {
			return err
		}
		t.e.concurrentNotes(func(topic string, offset int64, meta string) {
			book.note(topic, t.partition, offset, meta)
		})
		return nil
	}
	if t.batched > 0 {
		return t.flush()
	}
	return nil
}

// resumeConcurrent tells the engine what the partitions of its concurrent
// inputs resume from.
func (t *task[V]) resumeConcurrent() {
	for topic, r := range t.ccResume {
		t.e.resumeConcurrent(topic, r.offset, r.meta)
	}
}

// afterConcurrent produces what the engine handed out, takes the offsets it
// released, and counts what it queues against MaxBufferedBytes. err, from
// the engine, stops the partition at a failed record (Fail): what was
// released before it is written and marked, and it and every unfinished
// record stay uncommitted.
func (t *task[V]) afterConcurrent(err error) error {
	for _, r := range t.e.effects() {
		t.produce(r)
	}
	// Exactly once, emits and offsets wait for the end of the
	// transaction (writeConcurrent).
	hold := t.h.engine.holdConcurrentEmits
	released := t.e.concurrentReleased(func(topic string, eo kgo.EpochOffset) {
		if !hold {
			t.marks[topic] = eo
		}
	})
	if !hold {
		t.batched += released
	}
	if q := t.e.concurrentQueued(); q > t.ccQueued {
		t.h.input.held.Add(q - t.ccQueued)
		t.ccQueued = q
	} else if q < t.ccQueued {
		t.h.input.release(t.ccQueued - q)
		t.ccQueued = q
	}
	t.ccBusy.Store(t.e.concurrentBusy())
	if err != nil {
		if ferr := t.flush(); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}

// writeConcurrent produces, exactly once, the emits of the records released
// since the last transaction ended, and keeps the offsets the transaction
// commits for the task's concurrent inputs. It reports whether it produced
// anything.
func (t *task[V]) writeConcurrent() bool {
	if t.e.cc == nil {
		return false
	}
	t.ccMu.Lock()
	clear(t.ccCommit)
	out := t.e.concurrentWrite(func(topic string, eo kgo.EpochOffset, meta string) {
		if t.ccCommit == nil {
			t.ccCommit = make(map[string]ccCommit)
		}
		t.ccCommit[topic] = ccCommit{eo: eo, meta: meta}
	})
	t.ccMu.Unlock()
	for _, r := range out {
		t.produce(r)
	}
	return len(out) > 0
}

// concurrentEnded tells the engine how the transaction ended.
func (t *task[V]) concurrentEnded(committed bool) error {
	if t.e.cc == nil {
		return nil
	}
	return t.afterConcurrent(t.e.concurrentEnded(committed))
}

// stopConcurrent abandons the records in flight and forgets the offsets
// kept for the transaction, which no longer concern the task.
func (t *task[V]) stopConcurrent() {
	if t.e == nil || t.e.cc == nil {
		return
	}
	t.e.stopConcurrent()
	t.ccMu.Lock()
	clear(t.ccCommit)
	t.ccMu.Unlock()
	t.ccBusy.Store(false)
}
