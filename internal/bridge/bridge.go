// Package bridge lets package sluicetest drive the partition engines of
// package sluice without making them public. Package sluice fills in the
// function variables when it is initialised; sluicetest imports sluice, so
// they are set before sluicetest uses them.
//
// The bridge only adapts: what a record does (decoding, handlers, rows,
// undo, error policy, placement, effects) stays in sluice's engine, and what
// is written where stays in sluicetest's driver.
package bridge

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// Group is a group definition configured as a processor with its options
// would run it, for a driver that feeds its partition engines itself.
type Group interface {
	// Name returns the group's name.
	Name() string
	// Inputs returns the topics the group consumes, its loopback
	// included, in definition order.
	Inputs() []string
	// InputCodec returns the codec.Codec[M] of the values of input topic,
	// or nil if the group does not read it.
	InputCodec(topic string) any
	// Table returns the group's table topic, or "" without a table.
	Table() string
	// Windows returns the changelog topic of the group's window rows, or
	// "" for a group without windowed aggregations.
	Windows() string
	// TableCodec returns the codec.Codec[V] of the table's rows: nil for a
	// batch group, whose rows are typed by their BatchStore.
	TableCodec() any
	// Joins and Lookups return the tables the group joins and looks up.
	Joins() []string
	Lookups() []string
	// Lookup returns the store that holds the whole lookup table topic.
	Lookup(topic string) store.Store
	// DeadLetterTopic returns the topic of the DeadLetter policy, or "".
	DeadLetterTopic() string
	// ExactlyOnce reports whether the group runs exactly once.
	ExactlyOnce() bool
	// BatchSize returns the most records a batch holds, for a batch
	// group; 0 for a record-at-a-time group.
	BatchSize() int
	// Partition returns the partition the group's Hasher places key on.
	Partition(key []byte, n int32) int32
	// NewEngine returns the engine of one partition over its stores; its
	// wall clock is now.
	NewEngine(partition int32, table store.Store, joins map[string]store.Store, now func() time.Time) Engine
	// Ended counts a transaction that committed or aborted, and the input
	// records an aborted one redoes.
	Ended(committed bool, redone int64)
	// Stats returns the processor's Stats (sluice.BatchStats for a batch
	// group).
	Stats() any
}

// Engine is one partition engine.
type Engine interface {
	// Process runs recs, which all come from one topic partition (or, for
	// a batch group, form one batch of one partition number), and
	// returns how many it processed and the error that stopped it.
	Process(ctx context.Context, recs []*kgo.Record) (done int, err error)
	// Call runs fn as the handler of r, with the record's *Context[V] as
	// its argument, under the same rules as a handler of an input.
	Call(ctx context.Context, r *kgo.Record, fn func(ctx any) error) error
	// Effects, EndBatch, Applied and Discarded are the engine's own.
	Effects() []*kgo.Record
	EndBatch() []*kgo.Record
	// Applied's windowsEnd is the windows topic's end, -1 without one.
	Applied(changelogEnd, windowsEnd int64) error
	Discarded()
	// Tick fires the wall-clock timers due at now and, with IdleAdvance,
	// moves the stream time of an idle partition on, as a Kafka task's
	// tick does; its effects are a batch's.
	Tick(now time.Time) error
	// AdvanceStreamTime moves the partition's stream time to t, if later,
	// closing the windows and firing the event-time timers it passes, as
	// a record at t would before its handler; its effects are a batch's.
	AdvanceStreamTime(t time.Time) error
}

var (
	// NewGroup adapts g, a *sluice.Group[V] or *sluice.BatchGroup[K, V],
	// configured with opts (sluice.ProcessorOpt or
	// sluice.BatchProcessorOpt), to topics of partitions partitions.
	NewGroup func(g any, partitions int32, opts []any) (Group, error)
	// Handle returns the topic and the codec (a codec.Codec[T]) of a
	// sluice handle: an output, loopback, joined table, lookup table,
	// batch output or batch table. The topic of a batch table is "", its
	// group's table. ok is false for anything else.
	Handle func(h any) (topic string, codec any, ok bool)
	// RestoreWindows applies the records of a partition of a group's
	// windows topic, up to offset end, to st, which holds the partition's
	// table restored from its changelog, as a task's restore does: purge
	// marks delete the windows below them.
	RestoreWindows func(st store.Store, changes []store.Change, end int64) error
)
