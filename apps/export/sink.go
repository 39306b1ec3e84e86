package export

// The seam between the export and where its events go: a Sink stores
// records in calls, and Limits say how large a record and a call may be.
// Packing events into records and calls is the export's, so that every
// sink, a user's own included, gets only calls within its limits.

import (
	"context"
	"fmt"
)

// Record is what a sink stores as one unit: up to Limits.MaxEventsPerRecord
// events as JSON Lines, one JSON object per line, each line ending in '\n'.
type Record struct {
	// Data holds the events' lines.
	Data []byte
	// Events is the number of lines in Data.
	Events int
}

// Sink stores records in calls, as Kinesis Firehose's PutRecordBatch does.
// Put stores records in one call, which never breaks the Limits the export
// was given. It returns an error when the call failed as a whole: then no
// record counts as accepted and all are sent again. Otherwise it returns,
// for each record in order, nil if the sink accepted it or the reason it
// did not (a partial failure), or a nil slice when it accepted them all.
// A record's error may be a *LinesError, which says the sink took all of
// the record's lines but those it lists: only those are sent again.
// A record that is not accepted is sent again, in a later call; so is a
// record whose call failed, even if the sink did store it, so a sink may
// receive an event more than once, and the event's id says which are the
// same. Put is called from one goroutine at a time. A sink that also
// implements io.Closer is closed when the export stops.
type Sink interface {
	Put(ctx context.Context, records []Record) ([]error, error)
}

// LinesError is the error of a record whose sink took some of its lines
// and not others, such as an NDJSON endpoint that answers line by line.
type LinesError struct {
	// Lines are the numbers of the lines not taken, from 0 at the record's
	// first line, in increasing order.
	Lines []int
	// Err says why, for the first line not taken.
	Err error
}

func (e *LinesError) Error() string {
	return fmt.Sprintf("%d lines not taken: %v", len(e.Lines), e.Err)
}

func (e *LinesError) Unwrap() error { return e.Err }

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, records []Record) ([]error, error)

// Put calls f.
func (f SinkFunc) Put(ctx context.Context, records []Record) ([]error, error) {
	return f(ctx, records)
}

// The defaults of Limits: Kinesis Firehose's PutRecordBatch limits.
const (
	// DefaultMaxRecordsPerCall is the default of Limits.MaxRecordsPerCall.
	DefaultMaxRecordsPerCall = 500
	// DefaultMaxEventsPerRecord is the default of Limits.MaxEventsPerRecord.
	DefaultMaxEventsPerRecord = 1000
	// DefaultMaxRecordBytes is the default of Limits.MaxRecordBytes: 1,000 KiB.
	DefaultMaxRecordBytes = 1000 << 10
	// DefaultMaxCallBytes is the default of Limits.MaxCallBytes: 4 MiB.
	DefaultMaxCallBytes = 4 << 20
)

// Limits bound the records and calls of a sink. A zero field takes its
// default, Kinesis Firehose's PutRecordBatch limit.
type Limits struct {
	// MaxRecordsPerCall is the most records in one call. Default 500.
	MaxRecordsPerCall int
	// MaxEventsPerRecord is the most events (lines) in one record.
	// Default 1000.
	MaxEventsPerRecord int
	// MaxRecordBytes is the most bytes in one record. Default 1,000 KiB.
	MaxRecordBytes int
	// MaxCallBytes is the most bytes of all records of one call together.
	// Default 4 MiB.
	MaxCallBytes int
}

// withDefaults returns l with its zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxRecordsPerCall == 0 {
		l.MaxRecordsPerCall = DefaultMaxRecordsPerCall
	}
	if l.MaxEventsPerRecord == 0 {
		l.MaxEventsPerRecord = DefaultMaxEventsPerRecord
	}
	if l.MaxRecordBytes == 0 {
		l.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if l.MaxCallBytes == 0 {
		l.MaxCallBytes = DefaultMaxCallBytes
	}
	return l
}

// validate reports a limit that is negative, or a record limit larger than
// the call's, which no call could fill.
func (l Limits) validate() error {
	switch {
	case l.MaxRecordsPerCall < 0, l.MaxEventsPerRecord < 0, l.MaxRecordBytes < 0, l.MaxCallBytes < 0:
		return fmt.Errorf("sink limits %+v: want no negative limit", l)
	case l.MaxRecordBytes > l.MaxCallBytes:
		return fmt.Errorf("sink limits: a record of %d bytes does not fit in a call of %d", l.MaxRecordBytes, l.MaxCallBytes)
	}
	return nil
}

// maxEventBytes is the largest event line a record can hold.
func (l Limits) maxEventBytes() int { return l.MaxRecordBytes }

// Check reports the first limit that records, as one call, break, or nil.
// Sinks and their tests can use it to check what they receive.
func (l Limits) Check(records []Record) error {
	l = l.withDefaults()
	if len(records) > l.MaxRecordsPerCall {
		return fmt.Errorf("call of %d records: the limit is %d", len(records), l.MaxRecordsPerCall)
	}
	total := 0
	for i, r := range records {
		switch {
		case r.Events > l.MaxEventsPerRecord:
			return fmt.Errorf("record %d: %d events: the limit is %d", i, r.Events, l.MaxEventsPerRecord)
		case len(r.Data) > l.MaxRecordBytes:
			return fmt.Errorf("record %d: %d bytes: the limit is %d", i, len(r.Data), l.MaxRecordBytes)
		}
		total += len(r.Data)
	}
	if total > l.MaxCallBytes {
		return fmt.Errorf("call of %d bytes: the limit is %d", total, l.MaxCallBytes)
	}
	return nil
}

// pack packs lines, from the first, into the records of one call within
// l (whose defaults are set): a record ends when the next line would make
// it hold too many events or bytes, and the call when the next record
// would make it too many or too large. It returns the records and how
// many lines they hold. Every line must be at most l.MaxRecordBytes long.
// Each record's lines are measured first and copied into a buffer of their
// size, as a call carries megabytes.
func (l Limits) pack(lines [][]byte) ([]Record, int) {
	var (
		records []Record
		total   int // bytes of the call
		used    int
	)
	for used < len(lines) && len(records) < l.MaxRecordsPerCall {
		n, size := 0, 0
		for _, line := range lines[used:] {
			if n == l.MaxEventsPerRecord || size+len(line) > l.MaxRecordBytes || total+size+len(line) > l.MaxCallBytes {
				break
			}
			n++
			size += len(line)
		}
		if n == 0 {
			break
		}
		data := make([]byte, 0, size)
		for _, line := range lines[used : used+n] {
			data = append(data, line...)
		}
		records = append(records, Record{Data: data, Events: n})
		used += n
		total += size
	}
	return records, used
}
