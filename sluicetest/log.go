package sluicetest

// The in-memory log that stands in for Kafka: topics of partitions of
// records, each record committed, in an open transaction, or aborted.
//
// Invariants:
//   - Offsets are positions in a partition and never change; an aborted
//     record keeps its offset, as in Kafka, and readers skip it.
//   - A reader (the group's consumer, a restore, Records) reads committed
//     records only, and stops at the first record of an open transaction:
//     read committed, as sluice always reads.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
)

type entryState int8

const (
	committed entryState = iota
	open
	aborted
)

type entry struct {
	rec   *kgo.Record
	state entryState
}

// position is where a record is in its topic.
type position struct {
	partition int32
	offset    int64
}

// topicLog is one topic: its partitions, and where every record is in the
// order it was written, for Records. Entries are held by value, so that a
// record costs the log no allocation of its own.
type topicLog struct {
	parts [][]entry
	all   []position
}

func newTopicLog(partitions int32) *topicLog {
	return &topicLog{parts: make([][]entry, partitions)}
}

// append writes r to its partition, which is set, at the next offset.
func (l *topicLog) append(r *kgo.Record, state entryState) position {
	p := &l.parts[r.Partition]
	r.Offset = int64(len(*p))
	*p = append(*p, entry{rec: r, state: state})
	pos := position{r.Partition, r.Offset}
	l.all = append(l.all, pos)
	return pos
}

func (l *topicLog) at(pos position) *entry { return &l.parts[pos.partition][pos.offset] }

// written is a record of the open transaction.
type written struct {
	l   *topicLog
	pos position
}

func (w written) entry() *entry { return w.l.at(w.pos) }

// read appends to buf the committed records of partition p from offset
// from, stopping at an open transaction, and returns them with the offset
// after the last record it passed (aborted records included).
func (l *topicLog) read(p int32, from int64, buf []*kgo.Record) ([]*kgo.Record, int64) {
	entries := l.parts[p]
	off := from
	for ; off < int64(len(entries)); off++ {
		e := &entries[off]
		if e.state == open {
			break
		}
		if e.state == committed {
			buf = append(buf, e.rec)
		}
	}
	return buf, off
}

// Record is a record of a topic of the tester's log, as a read-committed
// consumer sees it.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
	Headers   []sluice.Header
	// Timestamp is what the record was sent with: records a group writes
	// carry none, and Kafka would set the time they were produced.
	Timestamp time.Time
}

// Header returns the value of the record's last header named key, and
// whether it has one.
func (r Record) Header(key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

func recordOf(r *kgo.Record) Record {
	out := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, sluice.Header{Key: h.Key, Value: h.Value})
	}
	return out
}

// Message is a record with its value decoded by its topic's codec: Value
// is the decoded value, and Record.Value the bytes.
type Message[T any] struct {
	Record
	Value T
}
