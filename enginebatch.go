package sluice

// The partition engine's side of batch groups: a batch is handled, undone
// and subject to the error policy as one unit, with the rows and the policy
// of engine.go.

import (
	"bytes"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kgo"
)

// newBatchCall returns the BatchContext and Sender of the engine's batch
// handler calls; its table store reads and writes the engine's rows.
func (e *engine[V]) newBatchCall() *batchCall {
	c := &batchCall{partition: e.partition, logs: e.logs, group: e.cfg.group.name, owner: e.cfg.batch.owner}
	if e.st != nil {
		c.rows = e
	}
	return c
}

// processBatch decodes recs into c and runs the group's batch handler. A
// record that does not decode is subject to the error policy alone; if the
// handler fails, its table writes are undone, what it sent is dropped and
// the policy applies to every record it was handed. It reports whether the
// handler ran and succeeded, in which case what it sent is added to the
// effects; the error is the one that stops the partition (Fail).
func (e *engine[V]) processBatch(c *batchCall, recs []*kgo.Record) (handled bool, err error) {
	run := e.cfg.batch.runner
	clear(e.undo)
	defer clear(e.undo)
	e.recordDirty = len(e.dirty)
	if err := run.decode(c, recs, e.decodeFailed); err != nil {
		return false, err
	}
	if len(c.kept) == 0 {
		return false, nil
	}
	if herr := callBatch(run, c); herr != nil {
		e.undoRecord()
		berr := &BatchError{Group: e.cfg.group.name, Partition: e.partition, Ranges: offsetRanges(c.kept), Err: herr}
		e.cfg.batch.stats.failed(len(c.kept))
		return false, e.onFailure(c.kept, berr)
	}
	e.out = append(e.out, c.sent...)
	return true, nil
}

// callBatch runs the handler, turning a panic into an error.
func callBatch(run batchRunner, c *batchCall) (err error) {
	h := c.begin()
	defer func() {
		c.end()
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return run.handle(h)
}

// decodeFailed applies the error policy to a record of a batch that did not
// decode; it returns the error that stops the partition under Fail.
func (e *engine[V]) decodeFailed(r *kgo.Record, err error) error {
	rerr := &RecordError{Group: e.cfg.group.name, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Err: err}
	return e.onFailure([]*kgo.Record{r}, rerr)
}

// getRaw returns the encoded row of key, for a table store. The bytes are
// the row's own: the caller must not modify them.
func (e *engine[V]) getRaw(key string) ([]byte, bool, error) {
	r, err := e.load(key)
	if err != nil || !r.exists {
		return nil, false, err
	}
	return r.raw, true, nil
}

// putRaw sets or deletes the row of key, for a table store. raw is copied:
// it may be the handler's own value.
func (e *engine[V]) putRaw(key string, raw []byte, exists bool) error {
	var zero V
	if exists {
		raw = bytes.Clone(raw)
	}
	return e.setRaw(key, raw, exists, zero, false)
}
