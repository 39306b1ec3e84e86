package sluice

// The Kafka task's side of concurrent inputs: it hands their records to the
// engine as the engine has room, takes back the records the engine's
// workers finished, produces what they released and marks the offsets
// below the lowest unfinished record (engineconcurrent.go).

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errTaskStopped is what a task returns from waiting for room when it was
// told to stop: the records it did not take are not committed.
var errTaskStopped = errors.New("task stopped")

// takeConcurrent hands recs, which all come from one partition of a
// concurrent input, to the engine, waiting for records to finish while the
// engine has no room for more.
func (t *task[V]) takeConcurrent(recs []*kgo.Record) error {
	for {
		n, err := t.e.takeConcurrent(recs)
		t.collectConcurrent()
		if err != nil {
			return t.stopAtFailure(err)
		}
		recs = recs[n:]
		if len(recs) == 0 {
			return nil
		}
		select {
		case c := <-t.e.concurrentDone():
			if err := t.onFinished(c); err != nil {
				return err
			}
		case <-t.stop:
			return errTaskStopped
		}
	}
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
	t.collectConcurrent()
	if err != nil {
		return t.stopAtFailure(err)
	}
	if t.batched > 0 {
		return t.flush()
	}
	return nil
}

// collectConcurrent produces what the engine handed out and takes the
// offsets it released.
func (t *task[V]) collectConcurrent() {
	for _, r := range t.e.effects() {
		t.produce(r)
	}
	t.batched += t.e.concurrentReleased(func(topic string, eo kgo.EpochOffset) {
		t.marks[topic] = eo
	})
}

// stopAtFailure writes and marks what was released before a record failed
// under Fail, and returns err, which stops the partition: the failed record
// and every unfinished one stay uncommitted.
func (t *task[V]) stopAtFailure(err error) error {
	if ferr := t.flush(); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}
