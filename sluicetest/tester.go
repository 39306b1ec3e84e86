package sluicetest

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// Option configures a Tester or a BatchTester.
type Option func(*config)

type config struct {
	partitions int32
	manual     bool
	opts       []any
	clock      time.Time
}

// DefaultClock is where the wall clock of a Tester starts without the Clock
// option: a fixed time, so that a test does the same whenever it runs.
var DefaultClock = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// Clock sets where the wall clock the group's engines see starts (it moves
// only with AdvanceClock). Wall-clock timers (SetWallTimer) fire by this
// clock, so a handler that sets them should compute their time from the
// record (ctx.Timestamp(), ctx.StreamTime()) or from a time the test
// controls, not from time.Now. Default: DefaultClock.
func Clock(start time.Time) Option { return func(c *config) { c.clock = start } }

// Partitions sets the partition count of every topic: the group's inputs,
// table, loopback, outputs and joined tables, as co-partitioned topics
// have. Each partition has its own engine. Default: 10.
func Partitions(n int32) Option { return func(c *config) { c.partitions = n } }

// ManualCommit makes Send and SendRaw process their records without
// committing them: the test calls Commit (or Abort, Crash, Rebalance) to
// end the batch. Default: every Send commits.
func ManualCommit() Option { return func(c *config) { c.manual = true } }

// ProcessorOptions configures the group as a processor with opts would
// run it, and fails New where NewProcessor would fail: OnError,
// Partitioning, StrictPartitioning, CacheRows and Guarantee decide what
// records do; options about reaching Kafka, storage, and the timing and size
// of batches and commits (CommitInterval, MaxBatch) are accepted and have
// no effect, as the test decides when batches end. For a Tester. Default:
// none.
func ProcessorOptions(opts ...sluice.ProcessorOpt) Option {
	return func(c *config) {
		for _, o := range opts {
			c.opts = append(c.opts, o)
		}
	}
}

// BatchProcessorOptions configures a batch group as a batch processor with
// opts would run it (BatchSize among them; BatchWait has no effect: a
// batch holds the records there are to read, up to BatchSize). For a
// BatchTester. Default: none.
func BatchProcessorOptions(opts ...sluice.BatchProcessorOpt) Option {
	return func(c *config) {
		for _, o := range opts {
			c.opts = append(c.opts, o)
		}
	}
}

func configOf(opts []Option) config {
	c := config{partitions: 10, clock: DefaultClock}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// RecordOpt sets something of a record sent to an input.
type RecordOpt func(*sent)

// sent is a record being sent.
type sent struct{ r *kgo.Record }

// WithHeaders gives the record headers.
func WithHeaders(hs ...sluice.Header) RecordOpt {
	return func(s *sent) {
		for _, h := range hs {
			s.r.Headers = append(s.r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
}

// WithTimestamp sets the record's timestamp. Default: the tester's wall
// clock (Now), as a producer stamps a record with the time it sends it.
func WithTimestamp(t time.Time) RecordOpt { return func(s *sent) { s.r.Timestamp = t } }

// ToPartition writes the record to partition p rather than to the one the
// group's Hasher places its key on, as a producer with another partitioner
// would (see sluice.StrictPartitioning).
func ToPartition(p int32) RecordOpt { return func(s *sent) { s.r.Partition = p } }

// Tester runs a group, *sluice.Group[V], over an in-memory log with the
// same partition engine as a Processor. Its Driver sends records, commits
// and simulates crashes and rebalances; its own methods read and seed the
// table's rows.
type Tester[V any] struct {
	*Driver
	table codec.Codec[V]
}

// New returns a tester of g, configured by opts. It fails if g does not
// validate or the options are wrong, as NewProcessor does.
func New[V any](g *sluice.Group[V], opts ...Option) (*Tester[V], error) {
	d, err := newDriver(g, configOf(opts))
	if err != nil {
		return nil, err
	}
	t := &Tester[V]{Driver: d}
	t.table, _ = d.g.TableCodec().(codec.Codec[V])
	return t, nil
}

// Row returns the row of key in the group's table as committed: changes
// of records processed since the last commit are not in it.
func (t *Tester[V]) Row(key string) (V, bool, error) {
	var zero V
	if t.table == nil {
		return zero, false, fmt.Errorf("sluicetest: group %s has no table", t.g.Name())
	}
	raw, ok, err := t.RawRow(key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := t.table.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("sluicetest: row %q: decode: %w", key, err)
	}
	return v, true, nil
}

// SetRow writes v as the row of key to the group's table, through its
// changelog, as if an earlier record had set it. What was processed is
// committed first.
func (t *Tester[V]) SetRow(key string, v V) error {
	if t.table == nil {
		return fmt.Errorf("sluicetest: group %s has no table", t.g.Name())
	}
	raw, err := t.table.Encode(v)
	if err != nil {
		return fmt.Errorf("sluicetest: row %q: encode: %w", key, err)
	}
	if raw == nil {
		raw = []byte{} // nil is a tombstone
	}
	return t.seed(t.g.Table(), []byte(key), raw)
}

// DeleteRow deletes the row of key, with a tombstone in the changelog.
// What was processed is committed first.
func (t *Tester[V]) DeleteRow(key string) error {
	if t.table == nil {
		return fmt.Errorf("sluicetest: group %s has no table", t.g.Name())
	}
	return t.seed(t.g.Table(), []byte(key), nil)
}

// Stats returns the processor's counts: Consumed, Skipped, DeadLettered,
// Misplaced, Failed, and Commits and Aborts exactly once. Partitions is
// empty: the tester has no tasks.
func (t *Tester[V]) Stats() sluice.Stats {
	s, _ := t.g.Stats().(sluice.Stats)
	return s
}

// BatchTester runs a batch group, *sluice.BatchGroup[K, V], over an
// in-memory log with the same partition engine as a BatchProcessor. A batch
// holds the records of one partition number, of every input, there are to
// read when it is handled, up to BatchSize: the record just sent, or with
// ManualCommit what was sent since the last Commit.
type BatchTester[K, V any] struct {
	*Driver
}

// NewBatch returns a tester of bg, configured by opts. It fails if bg does
// not validate or the options are wrong, as NewBatchProcessor does.
func NewBatch[K, V any](bg *sluice.BatchGroup[K, V], opts ...Option) (*BatchTester[K, V], error) {
	d, err := newDriver(bg, configOf(opts))
	if err != nil {
		return nil, err
	}
	return &BatchTester[K, V]{Driver: d}, nil
}

// Stats returns the batch processor's counts.
func (t *BatchTester[K, V]) Stats() sluice.BatchStats {
	s, _ := t.g.Stats().(sluice.BatchStats)
	return s
}

// Harness is a *Tester or a *BatchTester: what the functions that read and
// write typed records take.
type Harness interface {
	driver() *Driver
}

var errNotHandle = errors.New("not a handle of a sluice group")
