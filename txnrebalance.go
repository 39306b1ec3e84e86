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
func (p *Processor[V]) rebalanceBlocked(context.Context, *kgo.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.rebalanceWaiting {
		p.rebalanceWaiting = true
		close(p.waitingLocked())
	}
	// A callback that waits comes before the member joins (at the end
	// of a session) or after the join ended (the new session's first,
	// or the lost callback of a failed join): the member is not joining.
	p.joinEndedLocked()
	if p.wakePoll != nil {
		p.wakePoll()
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

func (p *Processor[V]) startJoining() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.joining {
		p.joining = true
		p.joined = make(chan struct{})
	}
}

func (p *Processor[V]) joinEndedLocked() {
	if p.joining {
		p.joining = false
		close(p.joined)
	}
}

func (p *Processor[V]) isJoining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.joining
}

// joinWait is how long after it began a transaction may wait for a join to
// end: half the transaction timeout, well before the broker aborts it, and
// longer than a join takes with the embedded broker (at most half the
// session timeout). A join that takes longer makes it abort.
func (p *Processor[V]) joinWait() time.Duration {
	return max(p.cfg.commitInterval, p.txnTimeout()/2)
}

func (p *Processor[V]) txnTimeout() time.Duration {
	d, _ := p.cl.OptValue(kgo.TransactionTimeout).(time.Duration)
	return d
}

// waitJoined waits until the member is not joining the group, or for a
// quarter of the transaction timeout.
func (p *Processor[V]) waitJoined() {
	p.mu.Lock()
	joining, joined := p.joining, p.joined
	p.mu.Unlock()
	if !joining {
		return
	}
	t := time.NewTimer(p.txnTimeout() / 4)
	defer t.Stop()
	select {
	case <-joined:
	case <-t.C:
	}
}

func (p *Processor[V]) rebalanceIsWaiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rebalanceWaiting
}

// waitingLocked returns the channel that is closed when a rebalance
// callback waits.
func (p *Processor[V]) waitingLocked() chan struct{} {
	if p.waiting == nil {
		p.waiting = make(chan struct{})
	}
	return p.waiting
}

// allowRebalance lets the rebalance callbacks that wait for the poll loop go
// ahead.
func (p *Processor[V]) allowRebalance() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.allowRebalanceLocked()
}

func (p *Processor[V]) allowRebalanceLocked() {
	p.cl.AllowRebalance()
	if p.rebalanceWaiting {
		p.rebalanceWaiting = false
		p.waiting = make(chan struct{})
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
func (p *Processor[V]) endHeld(try kgo.TransactionEndTry) error {
	p.mu.Lock()
	p.endingHeld = true
	waiting := p.waitingLocked()
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
		if p.endingHeld {
			p.logger.Info("a rebalance waited too long for the transaction to end; letting it go ahead")
			p.allowRebalanceLocked()
		}
	}()
	err := p.endTransaction(try)
	p.mu.Lock()
	p.endingHeld = false
	p.mu.Unlock()
	close(ended)
	return err
}
