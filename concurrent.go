package sluice

import (
	"errors"

	"github.com/sluice-io/sluice/codec"
)

// ConcurrentInput makes the group read topic as Input does, but handles up to
// n records of one partition at once, each in its own goroutine: for
// handlers that spend their time waiting on I/O (an HTTP call, a query),
// where one partition's records handled one at a time would leave the
// processor idle.
//
// Order: by default, records of one key are handled one at a time, in
// offset order, and never overlap; records of different keys do. PerKey(k)
// lets up to k records of one key overlap, and Unordered any records.
//
// Commits: a record's offset is committed only once it and every record
// below it in its partition have finished and their effects are
// acknowledged by Kafka, so at-least-once holds. With each offset, the
// commit's metadata lists the records above it that finished already and
// whose effects are acknowledged (exactly once: written in that
// transaction or an earlier one). A processor that stops (a crash, a
// revocation) leaves its unfinished records uncommitted, and whoever
// resumes the partition handles them again, but skips those the metadata
// lists: they are not handled again, their emits not written again, and
// their offsets count as finished. The list is bounded to fit Kafka's
// default offset.metadata.max.bytes (4096): past about 4,000 bytes of
// encoding the highest finished records are left out, and are handled
// again. Metadata another tool committed reads as nothing finished.
//
// Effects: a handler may emit to the group's outputs and loopback, and read
// joined and looked-up tables. At least once, a record's emits are written
// as soon as it finishes. Exactly once, they are written in the first
// transaction to end after it finished, which commits, for the partitions
// of a concurrent input, the offset of the lowest unfinished record rather
// than the offset after the last one polled, with the metadata that lists
// the record as finished. If that transaction aborts, the records' emits
// are written again in the next one, from what their handlers returned: the
// handlers do not run again (the handlers' own side effects, an HTTP call,
// are at least once by nature). While records of a concurrent input are in
// flight, a transaction ends every CommitInterval even when nothing new
// arrives. A group with a concurrent input cannot Persist a table (Validate
// says so): a row is one record's at a time, which concurrent handlers are
// not; Value, SetValue, Delete and the timer calls fail the record.
//
// Memory: at most n handlers run per partition, and at most MaxPending
// records (default 16×n) are held between the lowest unfinished record and
// the newest one taken: running, waiting behind a busy key, or finished and
// waiting for a record below them. A slow key holds its records and, once
// MaxPending is reached, the partition; until then the other keys go on.
// The records fetched beyond it wait within MaxBufferedBytes, as for any
// input. Exactly once, the emits of released records are also kept until
// the transaction that writes them commits, at most CommitInterval later.
//
// Failures: the group's error policy applies to a failed or panicking
// record as to any record: Skip and DeadLetter go on past it, Fail stops
// the processor at once, leaving it and every unfinished record
// uncommitted. Handlers see, as ctx.Context(), a context that is cancelled
// when the partition is revoked or the processor stops; the records then
// in flight are abandoned, not committed (an error a handler returns then
// is no failure), and a handler must return soon after, since the
// partition is let go only once its handlers returned.
//
// In sluicetest, the handlers run in goroutines as on a processor, and Send
// returns once the records it led to finished. An aborted transaction
// (Abort) runs them again: the tester reads them again from the committed
// positions.
func ConcurrentInput[V, M any](g *Group[V], topic string, c codec.Codec[M], h Handler[V, M], n int, opts ...ConcurrentOpt) {
	if c == nil || h == nil {
		g.fail("concurrent input %s: codec and handler must not be nil", topic)
		return
	}
	cc := &concurrency{limit: n, perKey: 1}
	for _, o := range opts {
		if o != nil {
			o.applyConcurrent(cc)
		}
	}
	switch {
	case n < 1:
		g.fail("concurrent input %s: the concurrency bound must be at least 1, got %d", topic, n)
		return
	case cc.perKeySet && cc.perKey < 1:
		g.fail("concurrent input %s: PerKey must be at least 1, got %d", topic, cc.perKey)
		return
	case !cc.pendingSet:
		cc.pending = 16 * n
	case cc.pending < n:
		g.fail("concurrent input %s: MaxPending %d must be at least the concurrency bound %d", topic, cc.pending, n)
		return
	}
	if !g.checkTopic("concurrent input", topic) {
		return
	}
	g.inputs = append(g.inputs, &inputEdge[V]{topic: topic, decode: decodeAndHandle(c, h), codec: c, conc: cc})
}

// ConcurrentOpt is an option of ConcurrentInput.
type ConcurrentOpt interface {
	applyConcurrent(*concurrency)
}

type concurrentOpt func(*concurrency)

func (o concurrentOpt) applyConcurrent(c *concurrency) { o(c) }

// Unordered lets records of one key overlap, and finish in any order. By
// default a concurrent input handles the records of one key one at a time,
// in offset order.
func Unordered() ConcurrentOpt {
	return concurrentOpt(func(c *concurrency) { c.perKey, c.perKeySet = 0, false })
}

// PerKey lets up to k records of one key run at once, overlapping and
// finishing in any order: for keys that stand for a resource with room for
// k calls at once (a remote host), so that a slow one takes no more than k
// of the input's handlers. The default, 1, handles the records of a key one
// at a time in offset order; Unordered lifts the bound. The last of PerKey
// and Unordered given applies.
func PerKey(k int) ConcurrentOpt {
	return concurrentOpt(func(c *concurrency) { c.perKey, c.perKeySet = k, true })
}

// MaxPending bounds how many records of one partition a concurrent input
// holds between its lowest unfinished record and the newest one it took:
// records running, waiting behind a busy key, or finished and waiting for a
// record below them. When it is reached, the partition takes no more
// records until the lowest unfinished one finishes. It must be at least the
// concurrency bound; the default is 16 times the concurrency bound.
func MaxPending(n int) ConcurrentOpt {
	return concurrentOpt(func(c *concurrency) { c.pending, c.pendingSet = n, true })
}

// concurrency is how a concurrent input runs its records.
type concurrency struct {
	limit      int  // handlers running at once per partition
	pending    int  // records held per partition
	pendingSet bool // by MaxPending
	perKey     int  // records of one key at once, 0 for no bound
	perKeySet  bool // by PerKey
}

// errConcurrentRow is what a concurrent handler gets for touching a row.
var errConcurrentRow = errors.New("a concurrent input's handler cannot reach table rows or timers")

// concurrentInputs returns the topics of the group's concurrent inputs.
func (g *Group[V]) concurrentInputs() []string {
	var topics []string
	for _, in := range g.inputs {
		if in.conc != nil {
			topics = append(topics, in.topic)
		}
	}
	return topics
}
