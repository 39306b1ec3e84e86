package sluice

import (
	"errors"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Policy says what a processor does with a record whose processing failed:
// its value did not decode (its codec returned an error or panicked: dead
// letters of kind decode), its handler returned an error, or its handler
// panicked. Whatever the policy, a failed record leaves no effects: its row
// changes are undone and its emits are dropped. Failures to write to Kafka
// are never subject to the policy: they are retried, and stop the processor
// if they persist, so that no data is skipped.
//
// Nor is a failure while the processor stops, when the context handlers
// see is cancelled and a handler cut short by it may fail for that alone:
// the record stays uncommitted, and the next run handles it again.
type Policy struct {
	kind  policyKind
	topic string
}

type policyKind int

const (
	failPolicy policyKind = iota
	skipPolicy
	deadLetterPolicy
)

// Fail stops the processor with a RecordError naming the record's topic,
// partition, offset and key. The record is not committed, so a restarted
// processor meets it again. This is the default.
var Fail = Policy{kind: failPolicy}

// Skip logs and counts the failed record and goes on past it, as if it had
// been processed without effects.
var Skip = Policy{kind: skipPolicy}

// DeadLetter writes the failed record (its key, value and headers) to topic
// with headers that say why and where it came from, and goes on past it. The
// dead letter is written with the batch, before the record's offset is
// committed. The headers are:
//
//	sluice-error            the error message
//	sluice-error-kind       decode, handler, panic, misplaced (StrictPartitioning), timer, late or window
//	sluice-group            the group that failed to process the record
//	sluice-source-topic     the record's topic
//	sluice-source-partition the record's partition, in decimal
//	sluice-source-offset    the record's offset, in decimal
//	sluice-failed-at        when processing failed, RFC 3339 with nanoseconds
//
// The dead letter of a failed timer (kind timer) has the timer's key, its
// name as value, an empty source topic and source offset -1. A record whose
// every window had closed (kind late, see LateError) is dead-lettered as
// it came. The dead letter of a window whose final result failed in its
// handler (kind window, see WindowError) has the window's key, its encoded
// aggregate as value, an empty source topic and source offset -1.
func DeadLetter(topic string) Policy { return Policy{kind: deadLetterPolicy, topic: topic} }

// String names the policy.
func (p Policy) String() string {
	switch p.kind {
	case skipPolicy:
		return "skip"
	case deadLetterPolicy:
		return "dead-letter to " + p.topic
	default:
		return "fail"
	}
}

// OnError sets the group's error policy. Default: Fail.
func OnError(p Policy) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.policy = p })
}

// Dead-letter header names.
const (
	HeaderError           = "sluice-error"
	HeaderErrorKind       = "sluice-error-kind"
	HeaderGroup           = "sluice-group"
	HeaderSourceTopic     = "sluice-source-topic"
	HeaderSourcePartition = "sluice-source-partition"
	HeaderSourceOffset    = "sluice-source-offset"
	HeaderFailedAt        = "sluice-failed-at"
)

// errorKind classifies a record failure for the dead-letter header.
func errorKind(err error) string {
	var (
		derr *DecodeError
		perr *PanicError
		merr *MisplacedError
		terr *TimerError
		werr *WindowError
		lerr *LateError
	)
	switch {
	case errors.As(err, &terr):
		return "timer"
	case errors.As(err, &werr):
		return "window"
	case errors.As(err, &lerr):
		return "late"
	case errors.As(err, &merr):
		return "misplaced"
	case errors.As(err, &derr):
		return "decode"
	case errors.As(err, &perr):
		return "panic"
	default:
		return "handler"
	}
}

// deadLetter builds the dead-letter record of r, which failed with err.
func deadLetter(topic, group string, r *kgo.Record, err error) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+7)
	headers = append(headers, r.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderErrorKind, Value: []byte(errorKind(err))},
		kgo.RecordHeader{Key: HeaderGroup, Value: []byte(group)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: HeaderFailedAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: headers, Partition: -1}
}
