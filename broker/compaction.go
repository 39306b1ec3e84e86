package broker

import (
	"context"
	"net"
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
// before, and tries again shortly when one is. A transaction whose first
// write reaches the broker between that answer and the compaction, a few
// microseconds of the broker's loop, is not protected.

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
		if open, err := transactionsOpen(self); err != nil || open {
			if err != nil {
				b.log.l.Debug("broker: postponing compaction: cannot list transactions", "err", err)
			} else {
				b.postponed.Add(1)
			}
			t.Reset(retry)
			continue
		}
		b.cluster.Compact()
		t.Reset(interval)
	}
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
