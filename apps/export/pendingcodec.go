package export

// The encoding of the group's pending rows. A row is written at every
// event of its key and read at the next, so it is a few varints rather
// than JSON: a version byte, the rechecks, the armed time, and each
// bucket's end and value. Rows written as JSON, before this encoding, are
// still read; a JSON object starts with '{', never the version byte.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-io/sluice/codec"
)

// pendingVersion is the first byte of a pending row in its binary
// encoding.
const pendingVersion = 1

// PendingCodec returns the codec of the export group's table, for a
// sluice.View over it: pending rows in a compact binary encoding, which
// also reads the JSON encoding rows were first written in.
func PendingCodec() codec.Codec[Pending] { return pendingCodec{} }

type pendingCodec struct{}

func (pendingCodec) Encode(p Pending) ([]byte, error) {
	b := make([]byte, 0, 8+len(p.Buckets)*(2*binary.MaxVarintLen64))
	b = append(b, pendingVersion)
	b = binary.AppendUvarint(b, uint64(max(p.Rechecks, 0)))
	if p.Armed.IsZero() {
		b = append(b, 0)
	} else {
		b = appendTime(append(b, 1), p.Armed)
	}
	b = binary.AppendUvarint(b, uint64(len(p.Buckets)))
	for _, pb := range p.Buckets {
		b = binary.AppendVarint(appendTime(b, pb.End), pb.Value)
	}
	return b, nil
}

// appendTime appends t as its Unix seconds and nanoseconds, which hold
// every time.Time, unlike its Unix nanoseconds.
func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

func (pendingCodec) Decode(b []byte) (Pending, error) {
	var p Pending
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &p); err != nil {
			return Pending{}, fmt.Errorf("pending row as JSON: %w", err)
		}
		p.Rechecks = max(p.Rechecks, 0) // a shift count
		return p, nil
	}
	if len(b) == 0 || b[0] != pendingVersion {
		return Pending{}, fmt.Errorf("pending row: want version %d or a JSON object, found % x", pendingVersion, b[:min(len(b), 1)])
	}
	r := pendingReader{b: b[1:]}
	p.Rechecks = int(min(r.uvarint(), 1<<30))
	if armed := r.byte(); armed == 1 {
		p.Armed = r.time()
	} else if armed != 0 {
		r.err = fmt.Errorf("armed flag %d", armed)
	}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) { // each bucket takes 3 bytes at least
		r.err = fmt.Errorf("%d buckets in %d bytes", n, len(r.b))
	}
	if r.err == nil && n > 0 {
		// Room for the event that the close of the key's next bucket
		// appends to what it reads.
		p.Buckets = make([]PendingBucket, n, n+1)
		for i := range p.Buckets {
			p.Buckets[i].End = r.time()
			p.Buckets[i].Value = r.varint()
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the buckets", len(r.b))
	}
	if r.err != nil {
		return Pending{}, fmt.Errorf("pending row: %w", r.err)
	}
	return p, nil
}

// errTruncated is a pending row that ends before its last field.
var errTruncated = errors.New("truncated")

// pendingReader reads the fields of a pending row; its first error stops
// it and stays in err.
type pendingReader struct {
	b   []byte
	err error
}

func (r *pendingReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *pendingReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *pendingReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *pendingReader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if r.err == nil && nsec >= uint64(time.Second) {
		r.fail(fmt.Errorf("%d nanoseconds", nsec))
	}
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *pendingReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}
