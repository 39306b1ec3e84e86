// Package sluicetest runs a sluice group in a test, without Kafka: the
// group's records go through the very partition engine a Processor runs,
// over an in-memory log instead of a broker.
//
// A test defines the group as the program does, sends records to its
// inputs, and reads what it wrote and the rows it keeps:
//
//	tt, err := sluicetest.New(clicks.DefineGroup())
//	if err != nil {
//		t.Fatal(err)
//	}
//	if err := sluicetest.Send(tt, clicks.Topic, "user-1", "click"); err != nil {
//		t.Fatal(err)
//	}
//	u, ok, err := tt.Row("user-1") // clicks.User{Clicks: 1}, true, nil
//
// Every topic has Partitions partitions (10 by default), and each
// partition has its own engine, as each of a processor's tasks has: a
// record goes to the partition the group's Hasher places its key on (or
// the one ToPartition names), and a loopback to its key's partition, where
// it is processed before Send returns. Output, Loopbacks and Records read
// what was written and committed, typed by the declared codecs; SetRow,
// SeedJoin and SeedLookup put rows in the group's tables; DeadLetters and
// Stats show what the error policy did. Call runs one handler on one
// record, to test it alone.
//
// Time is the test's: stream time moves with the timestamps of the records
// sent (WithTimestamp; by default the wall clock's time, see below), or the
// times their input's RecordTime gives them,
// and event-time timers fire and windows close when it passes them, as in
// a processor, so a window's final result is in the output once a record
// with a later time was sent, or AdvanceStreamTime moved stream time past
// the window's end plus grace without one; the wall clock starts at DefaultClock (or
// Clock) and moves only with AdvanceClock, which fires the wall-clock
// timers due and, with IdleAdvance, lets the stream time of idle
// partitions follow it, closing their windows.
//
// A test can also break things: with ManualCommit, records are processed
// as they are sent and committed by Commit; Abort aborts the open
// transaction exactly once; Crash drops what was not committed and starts
// every partition again on a new engine over a store rebuilt from the
// changelog; Rebalance moves partitions the same way after committing.
//
// What it guarantees: decoding, handlers, rows and their cache, undo of a
// failed record, the error policy, dead letters, key placement, changelog
// records and the order in which effects and rows become durable are the
// engine's, shared with Processor and BatchProcessor, and the group is
// configured by the same options; so a test passes or fails for the reasons
// production would. What the Kafka driver does alone (fetching, timing of
// batches and commits, BatchWait, consumer group rebalances, restores from a
// real broker) is simulated, not run: keep the embedded broker for that.
//
// A Tester is deterministic and starts no goroutines, except the handlers
// of a concurrent input (sluice.ConcurrentInput), which run concurrently as
// on a processor; Send and Commit return once they finished, so what they
// emitted is in Output. A Tester is not safe for concurrent use.
package sluicetest
