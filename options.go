package sluice

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/store"
)

// Opt configures how any sluice object reaches Kafka: processors, views and
// emitters all accept it. Every constructor ignores a nil option, of any
// kind, so that options can be chosen conditionally.
type Opt interface {
	ProcessorOpt
	ViewOpt
	EmitterOpt
}

// ProcessorOpt configures a Processor. Every ProcessorOpt configures a
// BatchProcessor too.
type ProcessorOpt interface {
	BatchProcessorOpt
	applyProcessor(*processorConfig)
}

// BatchProcessorOpt configures a BatchProcessor: every ProcessorOpt, and the
// options of batch processors alone (BatchSize, BatchWait), which a
// Processor does not take.
type BatchProcessorOpt interface{ applyBatchProcessor(*processorConfig) }

// ViewOpt configures a View.
type ViewOpt interface{ applyView(*viewConfig) }

// EmitterOpt configures an Emitter.
type EmitterOpt interface{ applyEmitter(*emitterConfig) }

// StorageOpt configures where a processor or a view keeps table rows.
type StorageOpt interface {
	ProcessorOpt
	ViewOpt
}

// DefaultBrokers is where sluice connects when no Brokers option is given:
// the address `sluice broker` listens on by default.
var DefaultBrokers = []string{"127.0.0.1:9092"}

// clientConfig is what every sluice object needs to reach Kafka.
type clientConfig struct {
	brokers     []string
	kafkaOpts   []kgo.Opt
	logger      *slog.Logger
	partitions  int32
	replication int16
	metrics     prometheus.Registerer
	hasher      Hasher // see Partitioning
}

func defaultClientConfig() clientConfig {
	return clientConfig{
		brokers:     DefaultBrokers,
		logger:      slog.New(slog.DiscardHandler),
		partitions:  10,
		replication: -1,
		hasher:      Murmur2,
	}
}

// check reports the first option whose value no Kafka client or broker
// accepts, naming it, so that a constructor fails rather than Run or the
// first write. object names the object configured, as in "group clicks".
func (c *clientConfig) check(object string) error {
	if len(c.brokers) == 0 {
		return fmt.Errorf("%s: Brokers: no address given; give at least one seed broker, host:port", object)
	}
	for i, addr := range c.brokers {
		if strings.TrimSpace(addr) == "" {
			return fmt.Errorf("%s: Brokers: address %d of %d is empty; give host:port", object, i+1, len(c.brokers))
		}
	}
	if c.partitions == 0 || c.partitions < -1 {
		return fmt.Errorf("%s: TopicDefaults: partitions must be positive, or -1 for the broker's default, got %d", object, c.partitions)
	}
	if c.replication == 0 || c.replication < -1 {
		return fmt.Errorf("%s: TopicDefaults: replication must be positive, or -1 for the broker's default, got %d", object, c.replication)
	}
	return nil
}

// partitioner places the records of the object's client: explicit
// partitions where given, keys by the object's Hasher.
func (c *clientConfig) partitioner() kgo.Partitioner {
	return kafka.Partitioner(c.hasher.orDefault().fn)
}

// kgoOpts returns the client options shared by every client sluice makes,
// then the user's KafkaOptions, then extra.
func (c *clientConfig) kgoOpts(extra ...kgo.Opt) []kgo.Opt {
	return c.kgoOptsWith(nil, extra...)
}

// kgoOptsWith returns the client options shared by every client sluice
// makes and defaults, which the user's KafkaOptions come after and so
// override, then owned, which KafkaOptions may not set (see kafkaopts.go).
func (c *clientConfig) kgoOptsWith(defaults []kgo.Opt, owned ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.WithLogger(kafka.Logger(c.logger.With("component", "kafka"))),
		// Partitions are added to readers and groups as tasks start; a
		// shorter minimum age lets the metadata they need arrive at once
		// instead of after the 5s default.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	opts = append(opts, defaults...)
	opts = append(opts, c.kafkaOpts...)
	return append(opts, owned...)
}

type clientOpt func(*clientConfig)

func (o clientOpt) applyProcessor(c *processorConfig)      { o(&c.client) }
func (o clientOpt) applyBatchProcessor(c *processorConfig) { o(&c.client) }
func (o clientOpt) applyView(c *viewConfig)                { o(&c.client) }
func (o clientOpt) applyEmitter(c *emitterConfig)          { o(&c.client) }

// Brokers sets the seed brokers, overriding DefaultBrokers. At least one
// address must be given, and none empty, or the constructor fails.
func Brokers(addrs ...string) Opt {
	return clientOpt(func(c *clientConfig) { c.brokers = append([]string(nil), addrs...) })
}

// KafkaOptions adds franz-go client options to every Kafka client sluice
// creates for the object, for TLS (kgo.DialTLSConfig), SASL (kgo.SASL),
// client IDs and tuning. They override sluice's defaults: on every client
// kgo.MetadataMinAge (250ms) and kgo.WithLogger (see Logger); on a
// processor's client kgo.FetchMaxWait (100ms), kgo.FetchMaxBytes and
// kgo.MaxBufferedBytes (see MaxBufferedBytes), kgo.ProducerLinger (0),
// kgo.RecordDeliveryTimeout (see DeliveryTimeout) and
// kgo.TransactionTimeout (10s); on the table reader of a view, and of a
// processor's restores, joins and lookups, kgo.FetchMaxWait (100ms) and
// kgo.FetchMaxBytes (1 MiB, so that a restore applies one fetch while the
// next is read). Fetch sizes, compression, batching, linger, retries,
// timeouts and hooks are the user's to set. The options an object
// owns, because how it reads, writes, commits and partitions rests on them
// or because sluice has an option of its own for them, make its
// constructor fail with an error naming the option. A processor owns
// kgo.ConsumerGroup, ConsumeTopics, ConsumePartitions, ConsumeRegex,
// Balancers, BlockRebalanceOnPoll, OnPartitionsAssigned,
// OnPartitionsRevoked, OnPartitionsLost, OnPartitionsCallbackBlocked,
// ConsumeResetOffset (use StartAt), FetchIsolationLevel, KeepControlRecords,
// RecordPartitioner (use Partitioning), SessionTimeout (use
// SessionTimeout), InstanceID (use InstanceID), TransactionalID,
// DisableAutoCommit, AutoCommitInterval (use CommitInterval),
// AutoCommitMarks, AutoCommitCallback and ManualFlushing, and, at least
// once with a ConcurrentInput, kgo.WithContext, whose context carries the
// commits' list of finished records. A view or window
// view owns kgo.ConsumerGroup, ConsumeTopics, ConsumePartitions,
// ConsumeRegex, ConsumeResetOffset, FetchIsolationLevel and
// KeepControlRecords. An emitter owns kgo.RecordPartitioner (use
// Partitioning), TransactionalID, ManualFlushing, ConsumerGroup,
// ConsumeTopics, ConsumePartitions and ConsumeRegex, and kgo.ProducerLinger
// when given DeliveryInterval. Default: none.
func KafkaOptions(opts ...kgo.Opt) Opt {
	return clientOpt(func(c *clientConfig) { c.kafkaOpts = append(c.kafkaOpts, opts...) })
}

// Logger sets the structured logger. Default: discard everything.
func Logger(l *slog.Logger) Opt {
	return clientOpt(func(c *clientConfig) {
		if l != nil {
			c.logger = l
		}
	})
}

// TopicDefaults sets the partition count and replication factor of topics
// sluice creates because they do not exist yet: inputs, outputs, loopback
// and table topics. A table or loopback topic is always created with its
// group's input partition count. Partitions or replication -1 asks for the
// broker's default; other values must be positive, or the constructor
// fails. Default: 10 partitions, replication -1.
func TopicDefaults(partitions int32, replication int16) Opt {
	return clientOpt(func(c *clientConfig) {
		c.partitions = partitions
		c.replication = replication
	})
}

type storageOpt func(*store.Builder)

func (o storageOpt) applyProcessor(c *processorConfig)      { o(&c.storage) }
func (o storageOpt) applyBatchProcessor(c *processorConfig) { o(&c.storage) }
func (o storageOpt) applyView(c *viewConfig)                { o(&c.storage) }

// Storage sets where table rows are kept locally, for example
// pebble.Builder(dir) or memory.Builder(). Default for processors: Pebble
// under the user's cache directory (sluice/state/<group>), with
// pebble.MemoryBudget's default of 128 MiB for all the processor's stores,
// counting rows (pebble.CountRows) when Metrics is set; for views: memory.
// A pebble.Builder's directory belongs to one processor at a time: give
// each processor of a machine a directory, or a Builder, of its own. A nil
// b keeps the default.
func Storage(b store.Builder) StorageOpt {
	return storageOpt(func(s *store.Builder) {
		if b != nil {
			*s = b
		}
	})
}

type processorOpt func(*processorConfig)

func (o processorOpt) applyProcessor(c *processorConfig)      { o(c) }
func (o processorOpt) applyBatchProcessor(c *processorConfig) { o(c) }

// CommitInterval sets how often a processor commits the input offsets whose
// effects are durable (at least once), or commits its transaction (exactly
// once). Longer intervals commit less often and reprocess more after a
// crash. At least once, outputs are written as soon as their batch is, and
// do not wait for commits; a task applies the rows of its acknowledged
// batches to its store, and marks their offsets for commit, up to a quarter
// of the interval (at most 250ms) later, in one store write; the minimum is
// 100ms, the Kafka client's
// shortest autocommit interval. At least once, a processor whose tasks have
// marked everything they were fetched, with no write in flight, commits at
// once rather than at the next interval, at most four times an interval
// besides the interval's own. Exactly once, outputs become visible to
// readers of committed records when their transaction commits, so the
// interval is most of their latency; the minimum is 10ms. Each transaction
// costs a few round trips to the brokers, a commit marker in every
// partition it wrote and a store write in every task, and the processor
// hands out no records while it ends one: shorter intervals cost more CPU
// per record and, below the time a commit takes, throughput. Exactly once,
// a transaction ends by half the transaction timeout even if the interval
// is longer, so that the broker never aborts it. Default: 1s at least
// once, 100ms exactly once.
func CommitInterval(d time.Duration) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.commitInterval = d })
}

// MaxBatch sets how many records a task processes before it writes their
// effects to Kafka and its store. Larger batches amortise produce round trips;
// a batch also ends whenever no more records are waiting. Default: 10000.
func MaxBatch(n int) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.maxBatch = n })
}

// ShutdownTimeout bounds a graceful stop: once Run's context is done, tasks
// finish their batches and write them, and the processor commits and leaves
// its group; work not written within d is abandoned (and processed again by
// the partitions' next owner), and Run returns an error that names the
// partitions and topics of the writes given up. It bounds the stop after a
// failure, and the wait for the tasks of revoked partitions, alike. It
// must be positive. Default: 30s.
func ShutdownTimeout(d time.Duration) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.shutdownTimeout = d })
}

// DeliveryTimeout bounds how long a record the processor writes (a
// changelog record, an output, a loopback, a dead letter) may take to be
// acknowledged by Kafka, the client's retries included. A write that is not
// acknowledged in time, as when the brokers stay unreachable, stops the
// processor: Run returns an error naming the task's partition and the topic
// written to (and its partition, once the client has chosen one). A record
// already sent to a broker that never answered cannot be timed out by the
// client without risking a duplicate; the processor then waits the produce
// request timeout (kgo.ProduceRequestTimeout, 10s) longer before it stops.
// Exactly once, it must not exceed the transaction timeout: the broker
// aborts a transaction whose records are still being retried at its
// timeout, and Run fails if it is longer. The minimum is 1s. Default: 30s
// at least once; exactly once, the transaction timeout (10s unless
// KafkaOptions set kgo.TransactionTimeout).
func DeliveryTimeout(d time.Duration) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.deliveryTimeout = d })
}

// SessionTimeout sets how long the group waits for a processor that stopped
// sending heartbeats (it crashed, or its network failed) before it gives the
// processor's partitions to others. Heartbeats are sent in the background,
// so slow handlers do not count against it. It must be positive, and
// within what the brokers allow (group.min.session.timeout.ms and
// group.max.session.timeout.ms). Default: 10s.
func SessionTimeout(d time.Duration) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.sessionTimeout = d })
}

// InstanceID makes the processor a static member of its group: a processor
// that restarts with the same id within the session timeout gets its
// partitions back without a rebalance, and a stopped one keeps them until
// the session timeout passes. Give each processor of a group its own stable
// id, such as its host name.
//
// Exactly once, the id also names the processor's transactional producer,
// "<group>-<id>" (grant it the TransactionalId ACLs on a secured cluster).
// A processor that restarts after a crash with the same id fences the
// transaction its predecessor left open, which the broker then aborts at
// once; without an id every run has a new, random transactional ID, and
// readers of the crashed processor's topics, its restarted successor among
// them, wait for the transaction timeout (10s) to end the open
// transaction. Two processors of a group in one process cannot share an
// id: the second Run fails. In different processes they fence each other,
// so each must have its own. Default: none (dynamic membership and a
// random transactional ID).
func InstanceID(id string) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.instanceID = id })
}

// StartOffset is where a group starts reading an input that it has no
// committed offset for.
type StartOffset int

const (
	// Earliest starts at the oldest record still in the topic.
	Earliest StartOffset = iota
	// Latest starts at the next record written.
	Latest
)

// StartAt sets where a new group starts reading its inputs: Earliest or
// Latest. Default:
// Earliest, so that a group's table accounts for every record of its inputs.
func StartAt(s StartOffset) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.startAt = s })
}

// CacheRows sets how many unchanged table rows a task keeps in memory, in
// front of its store, evicting the least recently used beyond n. Rows that a
// batch changed are kept, however many, until the store holds them (exactly
// once, until their transaction commits). A task of a group with windows
// keeps its windows' rows apart, up to n unchanged ones too, and the keys
// of up to n (at least 4096) rows of open windows it made and let go of,
// so that it does not read the store for a new one, and a
// task of a group with timers an index of up to 4n of its partition's timers,
// so that setting, replacing, cancelling or firing one reads no row of the
// store (with more, it reads them from the store). Default: 10000.
func CacheRows(n int) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.cacheRows = n })
}

// DeliveryGuarantee is what a processor promises about the effects of each
// input record.
type DeliveryGuarantee int

const (
	// AtLeastOnce makes every record's effects durable before its offset
	// is committed; after a crash, records since the last commit are
	// processed again.
	AtLeastOnce DeliveryGuarantee = iota
	// ExactlyOnce commits the table changes, outputs, loopbacks and input
	// offsets of the records processed since the last commit in one Kafka
	// transaction, every CommitInterval: after a crash the uncommitted ones
	// are processed again, but their earlier effects were aborted, so
	// readers that read committed records (sluice always does) see each
	// record's effects once.
	ExactlyOnce
)

func (g DeliveryGuarantee) String() string {
	if g == ExactlyOnce {
		return "exactly-once"
	}
	return "at-least-once"
}

// Guarantee sets the processor's delivery guarantee, AtLeastOnce or
// ExactlyOnce. Default: AtLeastOnce.
// With ExactlyOnce, CommitInterval is how long a transaction stays open
// (default 100ms, at least 10ms): longer ones cost less per record and make
// the outputs visible later.
func Guarantee(g DeliveryGuarantee) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.guarantee = g })
}

// MaxBufferedBytes bounds the memory a processor holds of the records it
// reads and writes, however many partitions it owns:
//
//   - the input its tasks hold before processing it, all together: the
//     records fetched and not yet processed, counted as the memory they
//     take, their keys, values and headers and the client's structures for
//     each (about 180 bytes, which for small records is most of it). While
//     the tasks hold n, the processor fetches nothing more until they catch
//     up, so a slow handler makes it wait rather than fill its memory. A
//     single fetch larger than n is still handed on when the tasks hold
//     nothing, so that records of any size are processed;
//   - what its client fetches from each broker at once, which it holds
//     ready while the tasks are busy: a quarter of n, at least 1 MiB and at
//     most 50 MiB (kgo.FetchMaxBytes, unless KafkaOptions sets it);
//   - the bytes of the records it produced and Kafka has not yet
//     acknowledged: n, at least 1 MiB (kgo.MaxBufferedBytes, unless
//     KafkaOptions sets it); a handler that emits more waits for
//     acknowledgements.
//
// Default: 32 MiB per processor.
func MaxBufferedBytes(n int) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.maxBufferedBytes = n })
}
