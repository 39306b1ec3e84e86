package broker

// Invariants:
//
//   - The kfake cluster owns all broker state and serves it from one
//     goroutine, its run loop. Everything this package asks of the cluster
//     after Start (compaction, shutdown) goes through that loop, and nothing
//     may ask once Close has begun shutting the cluster down: kfake's admin
//     calls block forever on a closed cluster. That is why Close stops the
//     compaction goroutine before it closes the cluster.
//   - With a data dir, the lock file is held from before the cluster loads
//     the directory until after the cluster has written its last byte there
//     and everything has been synced.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Settings that make kfake behave like a broker a stream processor can be
// developed against; doc.go explains each.
const (
	minSessionTimeout     = 100 * time.Millisecond
	consumerHeartbeatInMs = 500
)

// Broker is a running single-node Kafka-protocol broker. Its methods are safe
// for concurrent use.
type Broker struct {
	cluster *kfake.Cluster
	log     *slogAdapter
	addrs   []string
	dataDir string
	lock    *os.File // nil without a data dir

	stopCompaction chan struct{}
	compactionDone chan struct{}
	// postponed counts the compactions put off because a transaction was
	// open, so that tests can tell that the compactor ran meanwhile.
	postponed atomic.Int64
	// txnGate holds transactions back while the broker compacts.
	txnGate txnGate
	// beforeCompact, if set, runs between the check for open
	// transactions and the compaction (tests).
	beforeCompact atomic.Pointer[func()]

	closeOnce sync.Once
	closeErr  error
}

// Start starts a broker and returns once it accepts connections at
// Broker.Addrs. With DataDir it first loads what the directory holds from a
// previous run. ctx bounds only the start: if ctx is done first, Start
// returns its error and the broker, once up, is closed again. Stop the broker
// with Close.
//
// Start fails if the address is already in use, naming the address, and if
// another broker holds the data dir.
func Start(ctx context.Context, opts ...Opt) (*Broker, error) {
	cfg := defaults()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if cfg.partitions < 1 || cfg.partitions > MaxPartitions {
		return nil, fmt.Errorf("start broker: partitions must be 1 to %d, got %d", MaxPartitions, cfg.partitions)
	}
	if cfg.compactionInterval <= 0 {
		cfg.compactionInterval = defaults().compactionInterval
	}
	spec, err := parseAddr(cfg.addr, cfg.advertisedHost)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if cfg.dataDir != "" {
		// Later changes of the working directory must not move the data.
		if cfg.dataDir, err = filepath.Abs(cfg.dataDir); err != nil {
			return nil, fmt.Errorf("start broker: data dir: %w", err)
		}
	}

	b := &Broker{
		log:            &slogAdapter{l: cfg.logger},
		dataDir:        cfg.dataDir,
		stopCompaction: make(chan struct{}),
		compactionDone: make(chan struct{}),
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(spec.port),
		kfake.ListenFn(spec.listen),
		kfake.WithLogger(b.log),
		kfake.DefaultNumPartitions(cfg.partitions),
		kfake.GroupMinSessionTimeout(minSessionTimeout),
		kfake.BrokerConfigs(map[string]string{
			"group.consumer.heartbeat.interval.ms": strconv.Itoa(consumerHeartbeatInMs),
			"log.retention.ms":                     "-1",
			"log.cleaner.backoff.ms":               strconv.Itoa(kfakeCleanerBackoffMs),
		}),
	}
	if cfg.autoCreateTopics {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	if cfg.dataDir != "" {
		if b.lock, err = lockDataDir(cfg.dataDir); err != nil {
			return nil, fmt.Errorf("start broker: %w", err)
		}
		if err := forgetGroupMembers(cfg.dataDir); err != nil {
			b.unlock()
			return nil, fmt.Errorf("start broker: %w", err)
		}
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}

	// Loading a large data dir takes a while and kfake cannot be
	// interrupted, so the cluster starts on its own goroutine and a start
	// abandoned by ctx is cleaned up there.
	type started struct {
		c     *kfake.Cluster
		addrs []string
		err   error
	}
	ch := make(chan started, 1)
	go func() {
		c, err := kfake.NewCluster(kopts...)
		if err != nil {
			ch <- started{err: err}
			return
		}
		// ListenAddrs is answered by the run loop, so once it returns the
		// cluster serves requests.
		ch <- started{c: c, addrs: c.ListenAddrs()}
	}()
	select {
	case s := <-ch:
		if s.err != nil {
			b.unlock()
			return nil, fmt.Errorf("start broker: %w", s.err)
		}
		b.cluster, b.addrs = s.c, s.addrs
		b.cluster.ControlKey(int16(kmsg.JoinGroup), shortenRebalanceTimeout)
		b.cluster.ControlKey(int16(kmsg.CreateTopics), b.refuseBadTopics)
		b.cluster.ControlKey(int16(kmsg.CreatePartitions), b.refuseTooManyPartitions)
		b.cluster.ControlKey(int16(kmsg.AlterConfigs), b.refuseBadTopicConfigs)
		b.cluster.ControlKey(int16(kmsg.IncrementalAlterConfigs), b.refuseBadTopicConfigs)
		b.cluster.ControlKey(int16(kmsg.AddPartitionsToTxn), b.holdTransactionsWhileCompacting)
		b.cluster.ControlKey(int16(kmsg.Produce), b.holdTransactionsWhileCompacting)
	case <-ctx.Done():
		go func() {
			if s := <-ch; s.c != nil {
				s.c.Close()
			}
			b.unlock()
		}()
		return nil, fmt.Errorf("start broker: %w", ctx.Err())
	}

	go b.compactPeriodically(cfg.compactionInterval, spec.local)
	return b, nil
}

// Addrs returns the addresses to give Kafka clients as seed brokers, as
// "host:port". The broker is one node, so there is one address.
func (b *Broker) Addrs() []string {
	return append([]string(nil), b.addrs...)
}

// DataDir returns the directory the broker keeps its data in, or "" if it
// keeps everything in memory.
func (b *Broker) DataDir() string { return b.dataDir }

// Close stops the broker: it stops accepting connections, closes the open
// ones and, with a data dir, writes its state there, flushes every file to
// stable storage and releases the directory. Once Close returns, every record
// and offset commit the broker acknowledged is on disk. Close returns an
// error if any of that failed; calling it again returns the same error.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.stopCompaction)
		<-b.compactionDone

		b.log.captureErrors()
		b.cluster.Close()
		err := b.log.capturedErrors()
		if b.dataDir != "" {
			err = errors.Join(err, syncDir(b.dataDir))
		}
		err = errors.Join(err, b.unlock())
		if err != nil {
			b.closeErr = fmt.Errorf("close broker: %w", err)
		}
	})
	return b.closeErr
}

// unlock releases the data dir, if the broker holds one.
func (b *Broker) unlock() error {
	if b.lock == nil {
		return nil
	}
	err := b.lock.Close()
	b.lock = nil
	return err
}

// shortenRebalanceTimeout caps the rebalance timeout a classic group member
// asks for at half its session timeout, as the group coordinator sees it
// (the client keeps waiting as long as it asked to).
//
// kfake's coordinator ends the join phase of a rebalance when every member
// has joined or when the largest rebalance timeout has passed since the
// phase last changed, but it also expires a member whose JoinGroup is
// waiting once the member's session timeout passes, and a member that died
// while joining lingers until a join phase ends. With the usual rebalance
// timeout (kgo: 60 s) above the session timeout (sluice: 10 s), the live
// members waiting for such a member expire first, join again, restart the
// phase, and the group never settles. A phase that ends well within a
// session timeout drops the dead member instead.
func shortenRebalanceTimeout(kreq kmsg.Request) (kmsg.Response, error, bool) {
	if req, ok := kreq.(*kmsg.JoinGroupRequest); ok {
		if half := req.SessionTimeoutMillis / 2; req.RebalanceTimeoutMillis > half {
			req.RebalanceTimeoutMillis = half
		}
	}
	return nil, nil, false // not handled: the broker goes on with the request
}
