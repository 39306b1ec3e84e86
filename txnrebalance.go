package sluice

// How exactly-once transactions and group rebalances meet: the poll loop
// holds rebalance callbacks back while its transaction has work, commits
// when one waits, and ends no transaction while the member joins the group
// (see Processor.poll).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rebalanceBlocked is called by the client when a rebalance callback waits
// for the poll loop to allow it (BlockRebalanceOnPoll); exactly once, the
// poll loop then commits and allows it.
func (e *eos[V]) rebalanceBlocked(context.Context, *kgo.Client) {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !e.rebalanceWaiting {
		e.rebalanceWaiting = true
		close(e.waitingLocked())
	}
	// A callback that waits comes before the member joins (at the end
	// of a session) or after the join ended (the new session's first,
	// or the lost callback of a failed join): the member is not joining.
	e.joinEndedLocked()
	if e.wakePoll != nil {
		e.wakePoll()
	}
}

// joinWatch is a client hook that tells when the client writes a JoinGroup
// request, which it does to join the group again in a rebalance. Exactly
// once, a transaction that ends while the member joins aborts: the client
// takes the generation its offsets are committed with before it waits for
// the join, and the join ends that generation. So the poll loop ends no
// transaction while the member joins. The join is over when the new
// session's first callback waits for the poll loop or runs.
type joinWatch struct{ joining func() }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (w joinWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.JoinGroup.Int16() && err == nil {
		w.joining()
	}
}

func (e *eos[V]) startJoining() {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !e.joining {
		e.joining = true
		e.joined = make(chan struct{})
	}
}

func (e *eos[V]) joinEndedLocked() {
	if e.joining {
		e.joining = false
		close(e.joined)
	}
}

func (e *eos[V]) isJoining() bool {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return e.joining
}

// joinWait is how long after it began a transaction may wait for a join to
// end: half the transaction timeout, well before the broker aborts it, and
// longer than a join takes with the embedded broker (at most half the
// session timeout). A join that takes longer makes it abort, by the
// processor's hand if the commit then waits for the join too (see endBy).
func (e *eos[V]) joinWait() time.Duration {
	return max(e.commitInterval(), e.txnTimeout()/2)
}

// txnTimeout is the transaction timeout the client asks the broker for.
func (e *eos[V]) txnTimeout() time.Duration { return e.timeout }

// waitJoined waits until the member is not joining the group, or for a
// quarter of the transaction timeout.
func (e *eos[V]) waitJoined() {
	p := e.p
	p.mu.Lock()
	joining, joined := e.joining, e.joined
	p.mu.Unlock()
	if !joining {
		return
	}
	t := time.NewTimer(e.txnTimeout() / 4)
	defer t.Stop()
	select {
	case <-joined:
	case <-t.C:
	}
}

func (e *eos[V]) rebalanceIsWaiting() bool {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return e.rebalanceWaiting
}

// waitingLocked returns the channel that is closed when a rebalance
// callback waits.
func (e *eos[V]) waitingLocked() chan struct{} {
	if e.waiting == nil {
		e.waiting = make(chan struct{})
	}
	return e.waiting
}

// allowRebalance lets the rebalance callbacks that wait for the poll loop go
// ahead.
func (e *eos[V]) allowRebalance() {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	e.allowRebalanceLocked()
}

func (e *eos[V]) allowRebalanceLocked() {
	p := e.p
	p.cl.AllowRebalance()
	if e.rebalanceWaiting {
		e.rebalanceWaiting = false
		e.waiting = make(chan struct{})
	}
}

// endHeld ends the transaction with rebalances held back (see poll). A
// rebalance callback that waits longer than a quarter of the session
// timeout is let go ahead, and the transaction may then abort: the member
// may have been dropped from the group, and the end of the transaction then
// waits for a heartbeat that comes only after that callback ran (the
// client's lost callback, or the group's join). A quarter of the session
// timeout is half the longest rebalance timeout the embedded broker allows,
// so the group's rebalance does not time out meanwhile.
func (e *eos[V]) endHeld(try kgo.TransactionEndTry) error {
	p := e.p
	p.mu.Lock()
	e.endingHeld = true
	waiting := e.waitingLocked()
	p.mu.Unlock()
	ended := make(chan struct{})
	go func() {
		select {
		case <-waiting:
		case <-ended:
			return
		}
		grace := time.NewTimer(p.cfg.sessionTimeout / 4)
		defer grace.Stop()
		select {
		case <-grace.C:
		case <-ended:
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if e.endingHeld {
			p.logger.Info("a rebalance waited too long for the transaction to end; letting it go ahead")
			e.allowRebalanceLocked()
		}
	}()
	err := e.endTransaction(try)
	p.mu.Lock()
	e.endingHeld = false
	p.mu.Unlock()
	close(ended)
	return err
}
