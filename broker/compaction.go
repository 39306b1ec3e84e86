package broker

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The broker compacts on its own schedule instead of kfake's, for two reasons.
//
// kfake arms its compaction ticker only when a topic is created, deleted or
// reconfigured, not when it loads topics from a data dir, so after a restart
// it would not compact at all. Start therefore sets kfake's
// log.cleaner.backoff.ms so high that its ticker never fires.
//
// kfake compacts everything but a partition's newest batch, including records
// of transactions that are still open, where Kafka stops at the last stable
// offset. If such a transaction aborts, the committed records it superseded
// are gone: a table row lost. The broker therefore compacts only at a moment
// when no transaction is open, asking itself with ListTransactions just
// before, and tries again shortly when one is. From before that question
// until the compaction is over, the requests that begin a transaction or
// write into one are held (txnGate), so that none begins in between.

// kfakeCleanerBackoffMs is the log.cleaner.backoff.ms given to kfake: a
// century, never in practice, and far from overflowing the time.Duration
// kfake makes of it.
const kfakeCleanerBackoffMs = 100 * 365 * 24 * 60 * 60 * 1000

// compactionRetry is how soon the broker tries to compact again after
// finding a transaction open.
const compactionRetry = 100 * time.Millisecond

// compactPeriodically compacts the broker's compacted topics, and applies the
// retention of topics that set one, every interval until Close.
func (b *Broker) compactPeriodically(interval time.Duration, localAddr string) {
	defer close(b.compactionDone)

	// A client of this very broker. It dials the listener directly, since
	// the advertised host may be one only other machines can reach.
	self, err := kgo.NewClient(
		kgo.SeedBrokers(localAddr),
		kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, localAddr)
		}),
	)
	if err != nil {
		b.log.l.Error("broker: no client for compaction; compacted topics will not be compacted", "err", err)
		<-b.stopCompaction
		return
	}
	defer self.Close()

	retry := min(compactionRetry, interval)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stopCompaction:
			return
		case <-t.C:
		}
		b.txnGate.shut()
		if open, err := transactionsOpen(self); err != nil || open {
			b.txnGate.open()
			if err != nil {
				b.log.l.Debug("broker: postponing compaction: cannot list transactions", "err", err)
			} else {
				b.postponed.Add(1)
			}
			t.Reset(retry)
			continue
		}
		if hook := b.beforeCompact.Load(); hook != nil {
			(*hook)()
		}
		b.cluster.Compact()
		b.txnGate.open()
		t.Reset(interval)
	}
}

// txnGate holds the requests that begin a transaction or write into one
// while the broker makes sure that none is open and compacts.
//
// The broker's loop runs a request's control function and then handles the
// request before it takes the next one. So a request that found the gate
// open was handled before the ListTransactions sent after the gate shut,
// whose answer counts its transaction, and one that comes later waits for
// the compaction to end.
type txnGate struct {
	mu   sync.Mutex
	wait chan struct{} // closed when the gate opens again; nil while open
	held atomic.Int64  // requests held so far
}

func (g *txnGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wait == nil {
		g.wait = make(chan struct{})
	}
}

func (g *txnGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wait != nil {
		close(g.wait)
		g.wait = nil
	}
}

func (g *txnGate) shutUntil() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wait
}

// holdTransactionsWhileCompacting is the control of the requests that begin
// a transaction (AddPartitionsToTxn) or add partitions to one as they write
// (a transactional Produce): while the gate is shut, it lets the broker
// handle other requests and goes on once the gate opens, or the broker
// closes.
func (b *Broker) holdTransactionsWhileCompacting(kreq kmsg.Request) (kmsg.Response, error, bool) {
	if req, ok := kreq.(*kmsg.ProduceRequest); ok && req.TransactionID == nil {
		return nil, nil, false
	}
	if wait := b.txnGate.shutUntil(); wait != nil {
		b.txnGate.held.Add(1)
		b.cluster.SleepControl(func() { <-wait })
	}
	return nil, nil, false // not handled: the broker goes on with the request
}

// transactionsOpen reports whether any transaction has begun and not ended.
func transactionsOpen(cl *kgo.Client) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrListTransactionsRequest()
	req.StateFilters = []string{"Ongoing"}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return false, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return false, err
	}
	return len(resp.TransactionStates) > 0, nil
}
