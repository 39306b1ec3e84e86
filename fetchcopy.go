package sluice

// How a record the tasks hold is kept from holding a whole fetch response.

import "github.com/twmb/franz-go/pkg/kgo"

// detachUncompressed copies the bytes of the records of uncompressed batches
// out of the fetch response they came in, when that response also held
// compressed batches. The client decodes a compressed batch into a buffer
// of its own, which its records share, but leaves the keys, values and
// header values of an uncompressed batch where they were read: in the
// response, which holds everything a broker sent at once (up to
// kgo.FetchMaxBytes). One such record that a task still holds keeps all of
// the response alive, far more than the record counts against
// MaxBufferedBytes. Small batches, a single record, are sent uncompressed
// because compressing them does not pay, among the compressed batches of
// busier partitions; the more partitions a processor owns, the more of its
// fetches hold some. A response of uncompressed batches alone is made of
// its records, which count it, so nothing of it is copied.
func detachUncompressed(fetches kgo.Fetches) {
	for i := range fetches {
		f := &fetches[i]
		var plain, compressed bool
		eachFetchedRecord(f, func(r *kgo.Record) bool {
			if r.Attrs.CompressionType() == 0 {
				plain = true
			} else {
				compressed = true
			}
			return !(plain && compressed) // both seen: the rest need no look
		})
		if !plain || !compressed {
			continue
		}
		eachFetchedRecord(f, func(r *kgo.Record) bool {
			if r.Attrs.CompressionType() == 0 {
				detach(r)
			}
			return true
		})
	}
}

// eachFetchedRecord calls fn with each record of f, in order, until fn
// returns false.
func eachFetchedRecord(f *kgo.Fetch, fn func(*kgo.Record) bool) {
	for i := range f.Topics {
		parts := f.Topics[i].Partitions
		for j := range parts {
			for _, r := range parts[j].Records {
				if !fn(r) {
					return
				}
			}
		}
	}
}

// detach gives r's key, value and header values one allocation of their
// own. A nil key or value stays nil: a nil key is not an empty one.
func detach(r *kgo.Record) {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	r.Key = take(r.Key)
	r.Value = take(r.Value)
	for i := range r.Headers {
		r.Headers[i].Value = take(r.Headers[i].Value)
	}
}
