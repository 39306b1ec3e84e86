package sluice

// Which franz-go options a user may give through KafkaOptions. Every
// client sluice makes, a processor's, a view's or lookup's table reader, an
// emitter's, gets sluice's defaults first, then the user's options, then
// the options sluice owns for that kind of client, so that a user's tuning
// overrides a default and nothing overrides what the object rests on.
// Giving an owned option is an error rather than an option silently
// ignored.

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ownedOption is a client option that sluice sets on a processor's client
// itself, and why a user may not.
type ownedOption struct {
	name string // as the user wrote it
	// The kgo option function, for Client.OptValues; nil for the
	// partition callbacks, which checkKafkaOptions finds otherwise.
	fn any
	// A value other than kgo's default, for an option a user may set to
	// kgo's default (see checkKafkaOptions); nil where a user cannot.
	alt kgo.Opt
	why string
}

// processorOwned are the options a processor owns. Their values are what a
// processor's consuming, committing and partitioning rest on, or are set
// by an option of sluice's own.
var processorOwned = []ownedOption{
	{"kgo.ConsumerGroup", kgo.ConsumerGroup, kgo.ConsumerGroup("sluice-probe-alt"), "the consumer group is the group's name"},
	{"kgo.ConsumeTopics", kgo.ConsumeTopics, nil, "a processor consumes its group's inputs"},
	{"kgo.ConsumePartitions", kgo.ConsumePartitions, nil, "a processor consumes its group's inputs"},
	{"kgo.ConsumeRegex", kgo.ConsumeRegex, nil, "a processor consumes its group's inputs"},
	{"kgo.Balancers", kgo.Balancers, kgo.Balancers(kgo.RangeBalancer(), kgo.RoundRobinBalancer()), "a processor assigns co-partitioned inputs together"},
	{"kgo.BlockRebalanceOnPoll", kgo.BlockRebalanceOnPoll, nil, "a processor decides when rebalances go ahead"},
	{"kgo.OnPartitionsAssigned", nil, nil, partitionCallbacks},
	{"kgo.OnPartitionsRevoked", nil, nil, partitionCallbacks},
	{"kgo.OnPartitionsLost", nil, nil, partitionCallbacks},
	{"kgo.OnPartitionsCallbackBlocked", kgo.OnPartitionsCallbackBlocked, nil, "a processor's rebalance callbacks start and stop its tasks"},
	{"kgo.ConsumeResetOffset", kgo.ConsumeResetOffset, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-1)), "use sluice.StartAt"},
	{"kgo.FetchIsolationLevel", kgo.FetchIsolationLevel, kgo.FetchIsolationLevel(kgo.ReadCommitted()), "a processor reads committed records only"},
	{"kgo.RecordPartitioner", kgo.RecordPartitioner, kgo.RecordPartitioner(probePartitioner{alt: true}), "use sluice.Partitioning, which views, lookups and emitters share"},
	{"kgo.SessionTimeout", kgo.SessionTimeout, kgo.SessionTimeout(12345 * time.Millisecond), "use sluice.SessionTimeout"},
	{"kgo.InstanceID", kgo.InstanceID, nil, "use sluice.InstanceID, which also names the transactional producer"},
	{"kgo.TransactionalID", kgo.TransactionalID, nil, "exactly once, the transactional ID is made of the group's name and its InstanceID"},
	{"kgo.DisableAutoCommit", kgo.DisableAutoCommit, nil, "a processor commits only offsets whose effects are durable; use sluice.CommitInterval"},
	{"kgo.AutoCommitInterval", kgo.AutoCommitInterval, kgo.AutoCommitInterval(12345 * time.Millisecond), "use sluice.CommitInterval"},
	{"kgo.AutoCommitMarks", kgo.AutoCommitMarks, nil, "a processor commits only offsets whose effects are durable"},
	{"kgo.AutoCommitCallback", kgo.AutoCommitCallback, nil, "a processor reports its commits in Stats and Metrics"},
	{"kgo.ManualFlushing", kgo.ManualFlushing, nil, "a processor waits for its records to be acknowledged"},
	{"kgo.KeepControlRecords", kgo.KeepControlRecords, nil, "a processor's inputs and tables are read without the transactions' markers"},
}

// concurrentContext is owned by an at-least-once processor of a group with
// a concurrent input: its client's own commits run on the client's
// context, which carries the hook that writes with each commit which
// records above it have finished (concurrentresume.go).
var concurrentContext = ownedOption{"kgo.WithContext", kgo.WithContext,
	kgo.WithContext(context.WithValue(context.Background(), probeContext{}, true)),
	"at least once, the commits of a group with a concurrent input carry which records have finished, through the client's context"}

// probeContext is the key of the alternative context of concurrentContext.
type probeContext struct{}

// readerOwned are the options a table reader owns: the client of a view,
// and of a processor's restores, joins and lookups, which get the
// processor's KafkaOptions (processorOwned holds these too). The reader
// chooses the partitions and offsets it reads, and how a table written
// exactly once is read rests on the isolation level and the control
// records.
var readerOwned = []ownedOption{
	{"kgo.ConsumerGroup", kgo.ConsumerGroup, kgo.ConsumerGroup("sluice-probe-alt"), "a table is read by partition, outside any group"},
	{"kgo.ConsumeTopics", kgo.ConsumeTopics, nil, "a table reader reads its table's partitions"},
	{"kgo.ConsumePartitions", kgo.ConsumePartitions, nil, "a table reader reads its table's partitions"},
	{"kgo.ConsumeRegex", kgo.ConsumeRegex, nil, "a table reader reads its table's partitions"},
	{"kgo.ConsumeResetOffset", kgo.ConsumeResetOffset, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-1)), "a table is read from its start"},
	{"kgo.FetchIsolationLevel", kgo.FetchIsolationLevel, kgo.FetchIsolationLevel(kgo.ReadCommitted()), "a table is read committed, without the records of aborted transactions"},
	{"kgo.KeepControlRecords", kgo.KeepControlRecords, nil, "a table reader tracks its progress through the transactions' markers"},
}

// emitterOwned are the options an emitter owns. It writes outside
// transactions, hands every record to the client at once and consumes
// nothing.
var emitterOwned = []ownedOption{
	{"kgo.RecordPartitioner", kgo.RecordPartitioner, kgo.RecordPartitioner(probePartitioner{alt: true}), "use sluice.Partitioning, which views, lookups and processors share"},
	{"kgo.TransactionalID", kgo.TransactionalID, nil, "an emitter writes outside transactions"},
	{"kgo.ManualFlushing", kgo.ManualFlushing, nil, "an emitter's records are sent without waiting for Flush"},
	{"kgo.ConsumerGroup", kgo.ConsumerGroup, kgo.ConsumerGroup("sluice-probe-alt"), "an emitter consumes nothing"},
	{"kgo.ConsumeTopics", kgo.ConsumeTopics, nil, "an emitter consumes nothing"},
	{"kgo.ConsumePartitions", kgo.ConsumePartitions, nil, "an emitter consumes nothing"},
	{"kgo.ConsumeRegex", kgo.ConsumeRegex, nil, "an emitter consumes nothing"},
}

// emitterLinger is owned by an emitter given DeliveryInterval, which sets
// the linger itself.
var emitterLinger = ownedOption{"kgo.ProducerLinger", kgo.ProducerLinger, kgo.ProducerLinger(12345 * time.Millisecond), "DeliveryInterval sets it; give one of the two"}

const partitionCallbacks = "a processor's rebalance callbacks start and stop its tasks"

// probePartitioner stands in for the default partitioner in the clients
// checkKafkaOptions compares: kgo's default differs from one client to
// the next. The alt one is the partitioner's alternative value.
type probePartitioner struct{ alt bool }

func (probePartitioner) ForTopic(string) kgo.TopicPartitioner {
	return kgo.ManualPartitioner().ForTopic("")
}

// probeAddr is the seed broker of the clients checkKafkaOptions makes: they
// are closed before they could do anything, and nothing listens there.
const probeAddr = "127.0.0.1:1"

// checkKafkaOptions returns an error naming the first of owned that opts
// set, with why a user may not set it, or an error if opts are not a valid
// client configuration; object names the object opts were given to ("group
// g", "view t"). The options' values tell what opts set: those of a
// client made of opts after kgo's defaults, compared with a client made of
// the defaults alone, and, since a user may set an option to its default
// (kgo.ReadUncommitted), those of a client made of opts after the owned
// options' alternative values, compared with one made of those alone.
//
// The clients are of a group, so that group options are valid, and a group
// client wraps the partition callbacks in its own: whether opts set them
// shows only in that a client of no group refuses them: an object whose
// owned options do not name them has a client of no group, and gets the
// client's own error.
func checkKafkaOptions(object string, opts []kgo.Opt, owned []ownedOption) error {
	if len(opts) == 0 {
		return nil
	}
	def := []kgo.Opt{kgo.SeedBrokers(probeAddr), kgo.ConsumerGroup("sluice-probe"), kgo.RecordPartitioner(probePartitioner{})}
	alt := slices.Clone(def)
	for _, o := range owned {
		if o.alt != nil {
			alt = append(alt, o.alt)
		}
	}
	var clients [4]*kgo.Client
	for i, copts := range [][]kgo.Opt{def, slices.Concat(def, opts), alt, slices.Concat(alt, opts)} {
		cl, err := kgo.NewClient(copts...)
		if err != nil {
			return fmt.Errorf("%s: KafkaOptions: %w", object, err)
		}
		defer cl.Close()
		clients[i] = cl
	}
	refuse := func(name, why string) error {
		return fmt.Errorf("%s: KafkaOptions: %s is set by sluice and may not be given: %s", object, name, why)
	}
	for _, o := range owned {
		if o.fn == nil {
			continue
		}
		for _, pair := range [][2]*kgo.Client{{clients[0], clients[1]}, {clients[2], clients[3]}} {
			if !sameValues(pair[0].OptValues(o.fn), pair[1].OptValues(o.fn)) {
				return refuse(o.name, o.why)
			}
		}
	}
	cl, err := kgo.NewClient(slices.Concat([]kgo.Opt{kgo.SeedBrokers(probeAddr)}, opts)...)
	if err == nil {
		cl.Close()
	} else if strings.Contains(err.Error(), "assigned/revoked/lost") {
		if !slices.ContainsFunc(owned, func(o ownedOption) bool { return o.name == "kgo.OnPartitionsAssigned" }) {
			return fmt.Errorf("%s: KafkaOptions: %w", object, err)
		}
		return refuse("kgo.OnPartitionsAssigned, kgo.OnPartitionsRevoked or kgo.OnPartitionsLost", partitionCallbacks)
	}
	return nil
}

// sameValues reports whether two clients' values of an option are the same:
// deeply equal, or, for functions, which are never deeply equal, the same
// function (kgo puts callbacks of its own in a group client).
func sameValues(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		va, vb := reflect.ValueOf(a[i]), reflect.ValueOf(b[i])
		if va.Kind() == reflect.Func && vb.Kind() == reflect.Func {
			if va.IsNil() != vb.IsNil() || va.Pointer() != vb.Pointer() {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}
