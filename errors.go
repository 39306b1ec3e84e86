package sluice

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned by a view when a key has no row.
var ErrNotFound = errors.New("sluice: key not found")

// ErrClosed is returned, wrapped, by an emitter used after Close, and by a
// view or window view queried after its Run returned.
var ErrClosed = errors.New("sluice: closed")

// DecodeError is a record that its codec could not decode. It says where the
// record is, so that it can be found with any Kafka tool.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s/%d@%d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// RecordError is a record whose processing failed: its handler returned an
// error or panicked, or its value could not be decoded. Under the Fail
// policy it stops the processor; Skip and DeadLetter log it.
type RecordError struct {
	Group     string
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("group %s: record %s/%d@%d (key %q): %v", e.Group, e.Topic, e.Partition, e.Offset, e.Key, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// CopartitionError reports topics of one group whose partition counts
// differ. A group's inputs, loopback, table and joined tables must have equal
// counts, because a task joins partition p of each.
type CopartitionError struct {
	Group  string
	Counts map[string]int32
}

func (e *CopartitionError) Error() string {
	return fmt.Sprintf("group %s: topics are not co-partitioned, they must have equal partition counts: %s",
		e.Group, formatCounts(e.Counts))
}

// PanicError is a panic recovered from a handler, with its stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }
