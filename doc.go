// Package sluice is stateful stream processing for Kafka.
//
// A Group describes a processing unit: the streams it reads (Input, Loop),
// the table it keeps (Persist), the topics it writes (Output) and the tables
// it reads (Join, Lookup). Handlers are plain typed functions; the group's
// row type ties them together at compile time:
//
//	type User struct{ Clicks int }
//
//	g := sluice.DefineGroup[User]("mini-group")
//	sluice.Persist(g, codec.JSON[User]())
//	sluice.Input(g, "user-clicks", codec.String(), func(ctx *sluice.Context[User], _ string) error {
//		u, _ := ctx.Value()
//		u.Clicks++
//		ctx.SetValue(u)
//		return nil
//	})
//	p, err := sluice.NewProcessor(g, sluice.Brokers("127.0.0.1:9092"))
//	if err != nil {
//		return err
//	}
//	return p.Run(ctx)
//
// A Processor runs a group over the partitions its Kafka consumer group
// assigns to it, one task per partition number, each with a local store of
// its table rows (Pebble by default) backed by the compacted topic
// <group>-table. A View is a read-only, continuously updated copy of a whole
// table. An Emitter writes typed records to a topic:
//
//	v, err := sluice.NewView("mini-group-table", codec.JSON[User](), sluice.Brokers("127.0.0.1:9092"))
//	go v.Run(ctx)
//	err = v.WaitReady(ctx)
//	u, err := v.Get("user-3") // ErrNotFound if the key has no row
//
//	em, err := sluice.NewEmitter("user-clicks", codec.String(), sluice.Brokers("127.0.0.1:9092"))
//	err = em.Emit(ctx, "user-3", "click") // returns once Kafka acknowledged it
//
// A BatchGroup is processed Kasper's way: a BatchProcessor hands its handler
// the records of one partition of all its inputs in batches (BatchSize
// records, or what arrived within BatchWait), with a Sender for its outputs
// and key-value stores for its state (BatchTable, BatchState); what a batch
// sent is acknowledged before its offsets are committed.
//
// # Timers and event time
//
// Each partition has a stream time, the largest record timestamp its task
// has seen (Ctx.StreamTime). A group with a timer handler (OnTimer) sets
// per-key timers from its handlers, on stream time (SetTimer) or on the wall
// clock (SetWallTimer), and cancels them (CancelTimer). A timer fires its
// key's handler with the key's row, and its effects are written and
// committed like a record's, under the same error policy. Before a record is
// processed, stream time becomes the larger of itself and the record's
// timestamp, and every event-time timer at or before it fires, in time
// order; wall-clock timers fire when the wall clock reaches them, checked
// every 100 ms. Timers and stream time are rows of the group's table, under
// a reserved key prefix that record keys cannot take and views skip, so
// they survive restarts and move with their partition. With IdleAdvance, the
// stream time of a partition that receives nothing follows the wall clock.
// Batch groups have no timers.
//
// # Concurrent processing within a partition
//
// A task handles its partition's records one at a time. For handlers that
// wait on I/O, ConcurrentInput runs up to n of them at once, in goroutines,
// ordered per key (PerKey, Unordered loosen that), with at most MaxPending
// records of a partition held. An offset is committed only once its record
// and every record below it finished, so a crash redoes only the unfinished
// records and those above the lowest of them; exactly once, a record's
// emits are written in the transaction that commits its offset. A group
// with a concurrent input keeps no table.
//
// # Windows
//
// Aggregate declares a windowed aggregation: the records its handle adds
// (Windowed.Add, or every record of a WindowedInput) are folded, per key,
// into the windows of event time their time falls in, with an Aggregator,
// and a handler receives each window's result. Tumbling windows of size S
// are [k·S, (k+1)·S), aligned to the epoch (a record at exactly (k+1)·S is
// in the next one); hopping windows of size S advancing by A are every
// [k·A, k·A+S) that holds the record. Session windows with gap G are a
// key's records less than G apart, [first, last], merged with the
// Aggregator's Merge when a record bridges two; a session closes at its
// end plus G plus grace. Sliding windows with maximum difference D are
// Kafka Streams': [t-D, t] for each record at t, and [t+1ns, t+1ns+D] once
// a later record lies in it, so two records share a window when their
// times differ by at most D. A record's time is its Kafka
// timestamp, or what its input's RecordTime extracts. A window accepts
// records while the partition's stream time is before its end plus grace,
// and closes when stream time reaches it; its final result is then handed
// to the handler exactly once (with EmitUpdates, also every update). A
// record whose every window has closed fails with a *LateError under the
// error policy (dead-letter kind late). Closed windows are purged after
// their retention, size plus grace by default. Windows are rows of the
// group's table, restored and moved with their partition like timers.
//
// # Guarantees
//
// Processing is at least once by default. A task makes the effects of a batch of
// records durable in Kafka (table changes in the changelog, outputs,
// loopbacks) before it updates its local store and before the batch's input
// offsets can be committed, so no record's effects are lost. After a crash,
// the records since the last commit are processed again. The local store is
// never ahead of the changelog: it records the changelog offset its rows
// reflect, in the same atomic write as the rows, and is brought up to date
// from that offset when its partition is assigned.
//
// With Guarantee(ExactlyOnce), a processor writes the effects of the records
// it processed and their input offsets in one Kafka transaction every
// CommitInterval, and applies table changes to its stores only after the
// transaction committed; sluice reads every topic with read-committed
// isolation, so each record's effects are seen once.
//
// Keys are placed on partitions with Kafka's murmur2 partitioner by default,
// so sluice and other Kafka clients agree on where a key lives; the
// Partitioning option selects librdkafka's crc32 or Sarama's FNV-1a instead
// for data their producers wrote.
//
// # Where to start
//
// Package sluicetest runs a group in a test without Kafka, through the same
// engine a Processor runs; package broker runs a Kafka-protocol broker in
// the process, for development and tests; package web serves a monitor of
// a process's groups, views and emitters. The examples run as shown: a
// group (DefineGroup, Join, Lookup, Loop), its error policy (DeadLetter),
// exactly once (Guarantee), a view (NewView), an emitter (NewEmitter), a
// batch processor (BatchProcessor, BatchInput), timers (OnTimer), windows
// (Aggregate, Sessions, Sliding, Quantiles) and concurrent processing
// (ConcurrentInput). In the repository, docs/getting-started.md goes from an
// empty module to a tested group on the embedded broker, docs/concepts.md
// explains partitions, tables, time and the guarantees, docs/reference/ holds
// the reference pages (every option with its default among them), and
// docs/operations.md is about running a group on a Kafka cluster.
package sluice
