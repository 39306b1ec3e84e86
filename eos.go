package sluice

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// endTransaction ends the open transaction and begins the next: every
// active task writes its batch into it, the transaction commits (if try is
// TryCommit) with the offsets of every record polled (all of them processed
// by then), and the tasks apply its row changes to their stores, or forget
// them if it aborted.
func (p *Processor[V]) endTransaction(try kgo.TransactionEndTry) error {
	tasks := p.activeTasks()
	if err := stepAll(tasks, prepare); err != nil {
		return err
	}
	// The records are acknowledged by now (prepare waited for them); what
	// is left is a few requests. One that hangs past the transaction
	// timeout would end in an abort by the broker anyway.
	ctx, cancel := context.WithTimeout(p.writeCtx, 20*time.Second)
	defer cancel()
	committedTxn, err := p.txn.End(ctx, try)
	outcome := aborted
	if committedTxn {
		outcome = committed
	} else {
		p.aborts.Add(1)
		p.logger.Info("transaction aborted; its records are processed again", "redone", p.countRedone(), "err", err)
		p.metrics.setError(-1, "transaction aborted", err)
	}
	clear(p.txnHanded)
	if err != nil {
		// End can fail before it ends the transaction (records it could
		// not flush); abort what is left of it, so the next can begin.
		actx, acancel := context.WithTimeout(p.writeCtx, 30*time.Second)
		_, aerr := p.txn.End(actx, kgo.TryAbort)
		acancel()
		if aerr != nil {
			return fmt.Errorf("group %s: abort transaction after a failed commit (%v): %w", p.g.name, err, aerr)
		}
	}
	if serr := stepAll(tasks, outcome); serr != nil {
		return fmt.Errorf("group %s: end transaction: %w", p.g.name, serr)
	}
	// A failed end (the broker was unreachable, the producer was fenced
	// after a long outage) aborted the transaction: its records are read
	// again. Only a producer that cannot begin the next one is fatal.
	p.txnHasWork = false
	if committedTxn {
		p.commits.Add(1)
	}
	if err := p.txn.Begin(); err != nil {
		return fmt.Errorf("group %s: begin transaction: %w", p.g.name, err)
	}
	return nil
}

// endLastTransaction commits the open transaction on a graceful stop, or
// aborts it after a failure, and lets rebalances go ahead.
func (p *Processor[V]) endLastTransaction() {
	defer p.allowRebalance()
	if p.firstError() == nil && p.txnHasWork {
		p.waitJoined()
		if err := p.endHeld(kgo.TryCommit); err != nil {
			p.logger.Warn("final transaction failed", "err", err)
		}
	}
	if p.txnHasWork {
		p.logger.Info("last transaction aborted; its records are processed again", "redone", p.countRedone())
		clear(p.txnHanded)
	}
	ctx, cancel := context.WithTimeout(p.writeCtx, 30*time.Second)
	defer cancel()
	if _, err := p.txn.End(ctx, kgo.TryAbort); err != nil {
		p.logger.Warn("abort of the last transaction failed", "err", err)
	}
	_ = stepAll(p.activeTasks(), aborted)
}

// countRedone adds the records handed out in the transaction that is
// aborting to the counts of redone records, and returns how many they are.
func (p *Processor[V]) countRedone() int64 {
	var n int64
	for t, handed := range p.txnHanded {
		t.redone.Add(handed)
		n += handed
	}
	p.redone.Add(n)
	return n
}

// stepAll runs a transaction step in every task at once and returns the
// first error.
func stepAll[V any](tasks []*task[V], kind txnStepKind) error {
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Go(func() { errs[i] = t.step(kind) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
