package sluice

// A tableReader copies partitions of a table topic into local stores: it
// restores each partition from the store's checkpoint to the end offset seen
// when the partition was added, reports it ready, and then keeps following
// new records until the partition is removed.
//
// Invariants:
//   - A partition's applier (applyLoop), one goroutine, is the only writer
//     of its store while the partition is added; add and remove hand the
//     store over under mu, so after remove returns the reader never touches
//     the store again. Stores are written without holding mu, so that a
//     slow Apply holds up neither add, remove of other partitions, nor
//     progress: run counts under mu the fetches it hands a partition's
//     applier (queued), the applier counts each off once applied or
//     dropped, and remove waits until none is left (idle is signalled
//     whenever the count reaches 0). An applier drops what it is handed
//     once its partition is removed, or the reader failed or stopped.
//   - The poll goroutine (run) hands each partition's records to its
//     applier in the order fetched, at most one fetch ahead of the one
//     being applied: a slow partition holds up the polls, not the other
//     partitions' applying, and the memory held stays bounded.
//   - A partition's offset, restored count and readiness change under mu,
//     after each Apply.
//   - Each Apply records the offset after the last record applied (control
//     records included), so a store's checkpoint is always where reading
//     must resume.
//   - A store with no checkpoint that is far behind its end offset (a new
//     machine, a new view, a cleared state dir) is restored through its
//     store.Loader when it has one: the loader writes sorted chunks instead
//     of applying records through the memtable. The loader is closed, which
//     writes its last chunk, before the partition is reported ready, so
//     that following the changelog afterwards goes through Apply. A
//     partition removed while it loads leaves its loader open; closing the
//     store drops what the loader held, and the checkpoint of the last
//     chunk written is where the next restore starts.
//   - A restore reads to the high watermark, not to the last stable offset.
//     Records of a transaction still open (a crashed producer's, until the
//     broker aborts it) hide the committed records after them from a
//     read-committed reader; stopping at the stable offset would miss rows
//     whose input offsets are committed, and the task would process on from
//     an older row. Reading to the high watermark waits for such a
//     transaction to end instead.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/store"
)

type tableReader struct {
	topic  string
	cl     *kgo.Client
	logger *slog.Logger

	mu    sync.Mutex
	idle  *sync.Cond // on mu: a partition stopped applying
	parts map[int32]*readerPartition
	err   error
	dead  chan struct{} // closed when run fails
}

type readerPartition struct {
	st      store.Store
	loader  store.Loader // while restoring an empty store in chunks; nil otherwise
	end     int64        // end offset when added; ready once the checkpoint reaches it
	ready   chan struct{}
	started time.Time

	// Guarded by the reader's mu.
	offset   int64 // next offset to read
	hwm      int64 // high watermark of the last fetch, or end before one
	isReady  bool
	restored int64 // records applied while restoring
	queued   int   // fetches handed to the applier, not yet applied or dropped
	removed  bool  // remove was called: write no more

	// work hands fetched records to the partition's applier; only run
	// makes, sends on and closes it.
	work chan []*kgo.Record

	// Only apply touches it, from the partition's applier.
	changes []store.Change // apply's buffer while bulk-loading, empty between calls
}

// readerFetchMaxBytes bounds a table reader's fetches. The client holds one
// fetch per broker until it is polled, so a restore's fetching and applying
// overlap only from one fetch to the next; with the client's default of
// 50 MiB, the first fetch of a large changelog held three quarters of a
// 1M-row table, read while nothing was applied. A fetch still returns at
// least one record batch, however large.
const readerFetchMaxBytes = 1 << 20

// newTableReader connects a reader for topic. It reads committed records
// only: a table written exactly once holds aborted records too, and for one
// written at least once reading committed records changes nothing.
func newTableReader(cfg *clientConfig, logger *slog.Logger, topic string) (*tableReader, error) {
	opts := cfg.kgoOptsWith([]kgo.Opt{
		// Partitions are added while a fetch may be waiting for data on
		// others; a short wait lets the next fetch include them soon.
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.FetchMaxBytes(readerFetchMaxBytes),
	},
		// Owned (readerOwned): KafkaOptions may not set them.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("table %s: client: %w", topic, err)
	}
	r := &tableReader{
		topic:  topic,
		cl:     cl,
		logger: logger.With("table", topic),
		parts:  make(map[int32]*readerPartition),
		dead:   make(chan struct{}),
	}
	r.idle = sync.NewCond(&r.mu)
	return r, nil
}

// add starts copying partitions into their stores and returns, per
// partition, a channel closed when its store has caught up with the end
// offset the partition had when it was added.
func (r *tableReader) add(ctx context.Context, stores map[int32]store.Store) (map[int32]<-chan struct{}, error) {
	ends, err := r.endOffsets(ctx)
	if err != nil {
		return nil, err
	}
	readies := make(map[int32]<-chan struct{}, len(stores))
	offsets := make(map[int32]kgo.Offset, len(stores))
	added := make(map[int32]*readerPartition, len(stores))
	for p, st := range stores {
		end, ok := ends[p]
		if !ok {
			return nil, fmt.Errorf("table %s has no partition %d", r.topic, p)
		}
		from, err := st.Offset()
		if err != nil {
			return nil, fmt.Errorf("table %s/%d: read checkpoint: %w", r.topic, p, err)
		}
		if from > end {
			// The topic holds less than the store has seen: it was
			// recreated or truncated, so the store's rows cannot be
			// trusted.
			r.logger.Warn("store is ahead of its changelog; clearing it and restoring from the start",
				"partition", p, "checkpoint", from, "end", end)
			if err := st.Clear(); err != nil {
				return nil, fmt.Errorf("table %s/%d: clear store: %w", r.topic, p, err)
			}
			from = -1
		}
		rp := &readerPartition{st: st, end: end, hwm: end, offset: max(from, 0), ready: make(chan struct{}), started: time.Now()}
		if bl, ok := st.(store.BulkLoader); ok && from < 0 && end >= bulkLoadMin {
			if rp.loader, err = bl.BulkLoad(); err != nil {
				return nil, fmt.Errorf("table %s/%d: %w", r.topic, p, err)
			}
		}
		if rp.offset >= end {
			rp.isReady = true
			close(rp.ready)
		} else {
			r.logger.Info("restoring", "partition", p, "from", rp.offset, "to", end)
		}
		offsets[p] = kgo.NewOffset().AtStart()
		if from >= 0 {
			offsets[p] = kgo.NewOffset().At(from)
		}
		added[p] = rp
		readies[p] = rp.ready
	}
	r.mu.Lock()
	maps.Copy(r.parts, added)
	r.mu.Unlock()
	r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: offsets})
	return readies, nil
}

// endOffsets lists the table's end offsets, trying again while the error
// is transient: a partition assigned while a broker restarts waits for the
// broker, as fetching does, rather than failing its task.
func (r *tableReader) endOffsets(ctx context.Context) (map[int32]int64, error) {
	backoff := 50 * time.Millisecond
	for warned := false; ; warned = true {
		ends, err := kafka.EndOffsets(ctx, r.cl, r.topic, false)
		if err == nil || !kafka.Transient(err) {
			return ends, err
		}
		if !warned {
			r.logger.Warn("cannot list the table's end offsets; trying again until the brokers answer", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// remove stops copying partition p, waiting for a write to its store in
// progress to end. The store is not closed: it belongs to whoever added it.
func (r *tableReader) remove(p int32) {
	r.cl.RemoveConsumePartitions(map[string][]int32{r.topic: {p}})
	r.mu.Lock()
	defer r.mu.Unlock()
	rp, ok := r.parts[p]
	if !ok {
		return
	}
	rp.removed = true
	for rp.queued > 0 {
		r.idle.Wait()
	}
	if r.parts[p] == rp {
		delete(r.parts, p)
	}
}

// progress returns how far partition p is: the next offset to read, the end
// offset it restores to, and how many records it restored.
func (r *tableReader) progress(p int32) (offset, end, restored int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp, ok := r.parts[p]
	if !ok {
		return 0, 0, 0, false
	}
	return rp.offset, rp.end, rp.restored, true
}

// following returns how far partition p follows its changelog: the next
// offset to read, the high watermark of its last fetch, how many records
// it restored, and whether it caught up with the end offset it was added at.
func (r *tableReader) following(p int32) (offset, hwm, restored int64, ready, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp, ok := r.parts[p]
	if !ok {
		return 0, 0, 0, false, false
	}
	return rp.offset, max(rp.hwm, rp.offset), rp.restored, rp.isReady, true
}

func (r *tableReader) fail(err error) error {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
		close(r.dead)
	}
	r.mu.Unlock()
	return err
}

// failed returns a channel closed when run failed, and the error.
func (r *tableReader) failed() (<-chan struct{}, func() error) {
	return r.dead, func() error { r.mu.Lock(); defer r.mu.Unlock(); return r.err }
}

func (r *tableReader) close() { r.cl.Close() }

// waitReady waits until ready is closed, ctx is done or the reader failed.
func (r *tableReader) waitReady(ctx context.Context, ready <-chan struct{}) error {
	dead, errf := r.failed()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-dead:
		return errf()
	}
}

// fatalKafkaError reports whether err is a broker error that retrying will
// not cure, such as a failed authorization.
func fatalKafkaError(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}

// fatalGroupError reports whether an error of the consumer group itself,
// which the client otherwise recovers from by joining again, means the
// processor cannot go on.
func fatalGroupError(err error) bool {
	return errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.FencedInstanceID) ||
		errors.Is(err, kerr.InvalidGroupID) ||
		errors.Is(err, kerr.GroupMaxSizeReached) ||
		errors.Is(err, kerr.InconsistentGroupProtocol)
}
