package pebble

// Invariant of this file: a loadBuffer holds the changes of one chunk in the
// order it was given them, the keys and values copied into blocks of
// loadBlockSize that are kept and reused from chunk to chunk, so that a
// buffer neither copies what it holds as it grows nor asks the heap for new
// memory for each chunk. Change i is entries[i/loadEntryBlock][i%loadEntryBlock].

import (
	"bytes"
	"encoding/binary"
	"slices"
)

const (
	// loadBlockSize is the size of the blocks that hold keys and values; a
	// change larger than that has a block of its own.
	loadBlockSize = 256 << 10
	// loadEntryBlock is how many entries a block of entries holds.
	loadEntryBlock = 8192
	// maxLoadEntries is the most changes a buffer holds, however small they
	// are, so that their indexes fit a uint32 and the sort of a chunk stays
	// bounded.
	maxLoadEntries = 1 << 24
	// loadEntrySize is what a buffer counts for each change it holds
	// besides its key and value: its entry, and its sort key while sorted.
	loadEntrySize = 16 + 16
)

// loadEntry is one change a buffer holds: its key is keyLen bytes at at in
// block number block, its value follows it, and valueLen is -1 for a delete.
type loadEntry struct {
	block, at, keyLen uint32
	valueLen          int32
}

type loadBuffer struct {
	blocks  [][]byte // blocks[:used] hold this chunk's keys and values
	used    int
	entries [][]loadEntry
	n       int   // changes held
	bytes   int64 // bytes of keys and values held
	order   []sortKey
	scratch []sortKey   // for sorting order
	kept    []loadEntry // what sorted returns
}

// sortKey is what sortByKey sorts a key by: its 8 bytes after the prefix
// the keys share, big endian and padded with zeros, and its index.
type sortKey struct {
	head  uint64
	index uint32
}

// add copies a change into the buffer; value is ignored for a delete.
func (b *loadBuffer) add(key, value []byte, del bool) {
	n := len(key) + len(value)
	if b.used == 0 || len(b.blocks[b.used-1])+n > cap(b.blocks[b.used-1]) {
		b.nextBlock(n)
	}
	blk := b.used - 1
	e := loadEntry{block: uint32(blk), at: uint32(len(b.blocks[blk])), keyLen: uint32(len(key)), valueLen: int32(len(value))}
	if del {
		e.valueLen = -1
	}
	b.blocks[blk] = append(append(b.blocks[blk], key...), value...)
	if b.n/loadEntryBlock == len(b.entries) {
		b.entries = append(b.entries, make([]loadEntry, 0, loadEntryBlock))
	}
	eb := &b.entries[b.n/loadEntryBlock]
	*eb = append(*eb, e)
	b.n++
	b.bytes += int64(n)
}

// nextBlock makes room for n more bytes in a block after the ones in use.
func (b *loadBuffer) nextBlock(n int) {
	if n > loadBlockSize {
		b.blocks = slices.Insert(b.blocks, b.used, make([]byte, 0, n))
	} else if b.used == len(b.blocks) {
		b.blocks = append(b.blocks, make([]byte, 0, loadBlockSize))
	}
	b.used++
}

// size is how much memory the changes held take, as the budget counts it.
func (b *loadBuffer) size() int64 { return b.bytes + loadEntrySize*int64(b.n) }

func (b *loadBuffer) entry(i uint32) loadEntry {
	return b.entries[i/loadEntryBlock][i%loadEntryBlock]
}

func (b *loadBuffer) key(e loadEntry) []byte {
	return b.blocks[e.block][e.at : e.at+e.keyLen]
}

func (b *loadBuffer) value(e loadEntry) []byte {
	at := e.at + e.keyLen
	return b.blocks[e.block][at : at+uint32(max(e.valueLen, 0))]
}

// sorted returns the entries of the last change of each key, in key order
// (sortByKey). The slice is the buffer's, valid until the next call.
func (b *loadBuffer) sorted() []loadEntry {
	if b.n == 0 {
		return nil
	}
	b.order, b.scratch = sortByKey(b.n, func(i uint32) []byte { return b.key(b.entry(i)) }, b.order, b.scratch)
	// Keep the last change of each key, as its entry: a loop that only
	// copies entries lets the processor fetch many at once from all over
	// the buffer, where writing them in order would wait for each. The
	// slice is sized for every entry at once: grown by append, it cost
	// about as much CPU as the sort, in copies and in zeroing new memory.
	kept := slices.Grow(b.kept[:0], len(b.order))
	for i, o := range b.order {
		if i+1 < len(b.order) {
			next := b.order[i+1]
			if next.head == o.head && bytes.Equal(b.key(b.entry(o.index)), b.key(b.entry(next.index))) {
				continue
			}
		}
		kept = append(kept, b.entry(o.index))
	}
	b.kept = kept
	return kept
}

// reset empties the buffer and keeps its blocks of the standard size.
func (b *loadBuffer) reset() {
	kept := b.blocks[:0]
	for _, blk := range b.blocks {
		if cap(blk) == loadBlockSize {
			kept = append(kept, blk[:0])
		}
	}
	clear(b.blocks[len(kept):])
	b.blocks, b.used = kept, 0
	for i := range b.entries {
		b.entries[i] = b.entries[i][:0]
	}
	b.n, b.bytes = 0, 0
}

// sortByKey returns the indexes of n keys, key(i) for i in [0, n), in key
// order, equal keys in the order of their indexes. It sorts in order and
// scratch, grown if need be, and returns both for reuse.
//
// It sorts the indexes by the 8 bytes of their keys after the prefix that
// all the keys share, as an integer, in one stable radix sort, so that
// keys alike in those bytes keep their order; only those are compared
// whole, which for most sets of keys are the changes of one key.
func sortByKey(n int, key func(uint32) []byte, order, scratch []sortKey) ([]sortKey, []sortKey) {
	if n == 0 {
		return order[:0], scratch
	}
	first := key(0)
	common := len(first)
	for i := range uint32(n) {
		k := key(i)
		if len(k) >= common && bytes.Equal(k[:common], first[:common]) {
			continue
		}
		common = min(common, len(k))
		for j := range common {
			if k[j] != first[j] {
				common = j
				break
			}
		}
	}
	order = slices.Grow(order[:0], n)
	for i := range uint32(n) {
		var head [8]byte
		copy(head[:], key(i)[common:])
		order = append(order, sortKey{head: binary.BigEndian.Uint64(head[:]), index: i})
	}
	scratch = slices.Grow(scratch[:0], n)[:n]
	sortByHead(order, scratch)
	for lo := 0; lo < len(order); {
		hi := lo + 1
		for hi < len(order) && order[hi].head == order[lo].head {
			hi++
		}
		if hi-lo > 1 {
			slices.SortStableFunc(order[lo:hi], func(x, y sortKey) int {
				return bytes.Compare(key(x.index), key(y.index))
			})
		}
		lo = hi
	}
	return order, scratch
}

// sortByHead sorts a by head, keeping the order of elements alike in it: a
// least significant digit radix sort, one byte a pass, which skips the
// bytes that every element has alike. tmp must be as long as a.
func sortByHead(a, tmp []sortKey) {
	var counts [8][256]int
	for _, v := range a {
		for d := range 8 {
			counts[d][byte(v.head>>(8*d))]++
		}
	}
	src, dst := a, tmp
	for d := range 8 {
		c := &counts[d]
		shift := 8 * d
		if c[byte(a[0].head>>shift)] == len(a) {
			continue // every element has this byte alike
		}
		at := 0
		for i, n := range c {
			c[i] = at
			at += n
		}
		for _, v := range src {
			k := byte(v.head >> shift)
			dst[c[k]] = v
			c[k]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// touchAhead is how many entries ahead of the one being written, in groups
// of that many, a loader reads the first byte of their keys (see touch).
const touchAhead = 64

// touch reads the first byte of the key of each entry of es and returns
// them combined, so that the compiler keeps the reads. In key order the
// entries' keys lie all over the buffer: a loop that does nothing else
// lets the processor fetch many of them from memory at once, so that
// writing them into a table file finds them in the cache instead of
// waiting for each in turn. Entries of empty keys are skipped.
func (b *loadBuffer) touch(es []loadEntry) byte {
	var x byte
	for _, e := range es {
		if e.keyLen > 0 {
			x ^= b.blocks[e.block][e.at]
		}
	}
	return x
}
