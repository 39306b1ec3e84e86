package sluice

// The records a Kafka task's engine emits (outputs, loopbacks) come from two
// slabs, one per write of the task (pipeline.go): a record is made in the
// slab of the open write, which the task produces it in, and the slab is
// reused once Kafka acknowledged every record of that write, as the client
// drops a record after its promise. Other drivers, and the workers of
// concurrent inputs, which emit from goroutines of their own, allocate each
// record.

import "github.com/twmb/franz-go/pkg/kgo"

// A slab is chunks of slabChunk records; one that grew past slabKeepChunks
// lets the others go once reused, which the records alone then keep alive.
const (
	slabChunk      = 64
	slabKeepChunks = 2
)

// recordSlab is the records made for one write: the chunks, filled in
// order, the one in use last.
type recordSlab struct {
	chunks [][]recordWithHeaders
	cur    int
}

// newRecord returns an empty record with room for n headers, from the
// slab of the open write if the driver reuses them.
func (e *engine[V]) newRecord(n int) *kgo.Record {
	if !e.reuseOutputs || n > len(recordWithHeaders{}.hs) {
		return newRecord(n)
	}
	s := &e.outSlabs[e.outCur]
	if s.cur < len(s.chunks) && len(s.chunks[s.cur]) == slabChunk {
		s.cur++
	}
	if s.cur == len(s.chunks) {
		s.chunks = append(s.chunks, make([]recordWithHeaders, 0, slabChunk))
	}
	c := s.chunks[s.cur]
	c = c[:len(c)+1]
	s.chunks[s.cur] = c
	rh := &c[len(c)-1]
	rh.r.Headers = rh.hs[:0:n]
	return &rh.r
}

// outputsTo makes the records emitted from now on part of write i's slab:
// the driver calls it when write i opens.
func (e *engine[V]) outputsTo(i int) { e.outCur = i }

// outputsAcknowledged lets go of the records of write i's slab, every one
// of which Kafka acknowledged or the driver dropped: the slab is reused.
func (e *engine[V]) outputsAcknowledged(i int) {
	s := &e.outSlabs[i]
	for j, c := range s.chunks {
		// Cleared, so that the slab keeps no key or value alive (keys
		// share the bytes of fetched batches).
		clear(c)
		s.chunks[j] = c[:0]
	}
	if len(s.chunks) > slabKeepChunks {
		clear(s.chunks[slabKeepChunks:])
		s.chunks = s.chunks[:slabKeepChunks]
	}
	s.cur = 0
}

// dropOutputs forgets both slabs, for a driver that abandons records that
// may still be in flight.
func (e *engine[V]) dropOutputs() {
	for i := range e.outSlabs {
		e.outSlabs[i] = recordSlab{}
	}
}

// newRecord allocates the records of concurrent inputs' workers.
func (io *ccIO[V]) newRecord(n int) *kgo.Record { return newRecord(n) }
