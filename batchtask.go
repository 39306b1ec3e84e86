package sluice

// A task of a batch processor collects the records of its partition number
// into batches and has the partition engine hand each batch to the group's
// handler (enginebatch.go); the task writes what the engine returns.
//
// Invariants, besides those of task.go:
//   - The task's goroutine owns the open batch and its timer; the timer runs
//     only while the batch holds records.
//   - A batch is handled and written (outputs, dead letters and table
//     changes acknowledged; BatchState stores flushed) before its offsets
//     are marked, and before the next batch is handled. Records in the open
//     batch are never marked; when the task stops they are dropped, and the
//     partition's next owner reads them again.
//   - Exactly once, the transaction commits the offsets of every record
//     fetched, so preparing the commit closes the open batch first.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batchConfig is the part of a processor's configuration that only batch
// processors have.
type batchConfig struct {
	size   int
	wait   time.Duration
	runner batchRunner // nil for a record-at-a-time processor
	owner  any         // the *BatchGroup being run
	stats  *batchStats
}

// batchRunner is the typed half of a batch group, which tasks drive.
type batchRunner interface {
	// decode decodes recs into c, passing each record that does not decode
	// to failed; it stops at the first error failed returns.
	decode(c *batchCall, recs []*kgo.Record, failed func(*kgo.Record, error) error) error
	// handle calls the handler with the records decode kept, through h.
	handle(h *batchHandle) error
	// flushStates flushes the group's BatchState stores.
	flushStates(ctx context.Context) error
}

// batchCall is what one task's handler calls share: the batch being
// handled and what its handler sent. It is reused from call to call; a
// handler reaches it through the batchHandle of its own call.
type batchCall struct {
	// mu guards sent and live, and the engine's rows while a table store
	// uses them, so that the goroutines of a handler may send at once, and
	// a handle of a call that ended cannot reach a later call's batch.
	mu   sync.Mutex
	live uint64 // the generation of the call running, 0 between calls
	gen  uint64 // the generation of the last call

	ctx       context.Context
	partition int32
	logs      *slog.Logger
	group     string
	owner     any       // the *BatchGroup being run
	rows      batchRows // the engine's table rows; nil without a table
	sent      []*kgo.Record
	decoded   any           // []Record[K, V] of the batch
	kept      []*kgo.Record // the records that decoded, in decoded's order
}

func (t *task[V]) batchSettings() *batchConfig { return t.h.batch }

// errBatchOver is what the Sender and the table store of a handler call
// return once the handler returned.
var errBatchOver = errors.New("used after its batch handler returned")

// begin starts a handler call and returns its handle.
func (c *batchCall) begin() *batchHandle {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.live = c.gen
	return &batchHandle{c: c, gen: c.gen, ctx: c.ctx}
}

// end ends the handler call: its handle no longer reaches the batch.
func (c *batchCall) end() {
	c.mu.Lock()
	c.live = 0
	c.mu.Unlock()
}

// batchHandle is the BatchContext and the Sender of one handler call.
type batchHandle struct {
	c   *batchCall
	gen uint64
	ctx context.Context
}

func (h *batchHandle) batch() *batchHandle      { return h }
func (h *batchHandle) Context() context.Context { return h.ctx }
func (h *batchHandle) Partition() int32         { return h.c.partition }
func (h *batchHandle) Logger() *slog.Logger     { return h.c.logs }

// Sent returns how many records the call sent, or 0 once it ended.
func (h *batchHandle) Sent() int {
	c, err := h.lock()
	if err != nil {
		return 0
	}
	defer c.mu.Unlock()
	return len(c.sent)
}

// lock locks the call's batch, or returns errBatchOver if the call ended.
func (h *batchHandle) lock() (*batchCall, error) {
	h.c.mu.Lock()
	if h.c.live != h.gen {
		h.c.mu.Unlock()
		return nil, errBatchOver
	}
	return h.c, nil
}

// batchRows is how a table store reaches the rows of its engine.
type batchRows interface {
	getRaw(key string) ([]byte, bool, error)
	putRaw(key string, raw []byte, exists bool) error
}

// batchState is a task's open batch.
type batchState struct {
	buf    []*kgo.Record
	timer  *time.Timer
	call   *batchCall
	behind map[string]int64 // per input topic, as of its last fetch
}

func (t *task[V]) batchLoop() error {
	b := &t.batch
	b.timer = time.NewTimer(time.Hour)
	b.timer.Stop()
	defer b.timer.Stop()
	b.behind = make(map[string]int64)
	stats := t.batchSettings().stats
	defer stats.release(t.partition)
	b.call = t.e.newBatchCall()
	for {
		select {
		case <-t.stop:
			return nil
		case <-b.timer.C:
			if err := t.closeBatch(); err != nil {
				return err
			}
		case d := <-t.in:
			// Records the batch holds count against BatchSize, not
			// against MaxBufferedBytes.
			err := t.batchDelivery(d)
			t.took(d)
			if err != nil {
				return err
			}
		}
	}
}

func (t *task[V]) batchDelivery(d delivery) error {
	b := &t.batch
	if d.step != nil {
		var err error
		switch d.step.kind {
		case prepare:
			err = t.closeBatch()
		case committed:
			err = t.applyPending()
		case aborted:
			// Records fetched since the last commit are read again.
			err = t.discardPending()
			t.dropBatch()
		}
		d.step.done <- err
		return err
	}
	cfg := t.batchSettings()
	recs := d.recs
	if len(recs) == 0 {
		return nil
	}
	last := recs[len(recs)-1]
	b.behind[last.Topic] = max(d.hwm-last.Offset-1, 0)
	var behind int64
	for _, n := range b.behind {
		behind += n
	}
	cfg.stats.setBehind(t.partition, behind)
	for len(recs) > 0 {
		if len(b.buf) == 0 {
			b.timer.Reset(cfg.wait)
		}
		n := min(cfg.size-len(b.buf), len(recs))
		b.buf = append(b.buf, recs[:n]...)
		recs = recs[n:]
		if len(b.buf) >= cfg.size {
			if err := t.closeBatch(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *task[V]) dropBatch() {
	t.batch.timer.Stop()
	clear(t.batch.buf)
	t.batch.buf = t.batch.buf[:0]
}

// closeBatch handles the open batch, if any, and writes it.
func (t *task[V]) closeBatch() error {
	b := &t.batch
	if len(b.buf) == 0 {
		return nil
	}
	b.timer.Stop()
	start := time.Now()
	err := t.handleBatch(b.buf)
	if err == nil {
		t.batchSettings().stats.observe(t.partition, len(b.buf), time.Since(start))
	}
	t.dropBatch()
	return err
}

// handleBatch has the engine run the handler over recs and writes the
// outcome: what the handler sent and its table writes if it succeeded, what
// the error policy asks for if it failed. It then marks the batch's offsets
// (at least once).
func (t *task[V]) handleBatch(recs []*kgo.Record) error {
	c := t.batch.call
	c.ctx = t.h.ctx
	c.sent = c.sent[:0]
	handled, err := t.e.processBatch(c, recs)
	if err != nil {
		return err
	}
	if handled {
		if err := t.batchSettings().runner.flushStates(t.h.writeCtx); err != nil {
			return fmt.Errorf("group %s: partition %d: flush state: %w", t.h.group, t.partition, err)
		}
	}
	t.produceEffects()
	clear(c.sent)
	c.sent = c.sent[:0]
	clear(c.kept)
	c.kept = c.kept[:0]
	c.decoded = nil
	for _, r := range recs {
		t.marks[r.Topic] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	}
	t.batched = len(recs)
	return t.flush()
}
