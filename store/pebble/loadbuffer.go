package pebble

// Invariant of this file: a loadBuffer holds the changes of one chunk in the
// order it was given them, the keys and values copied into blocks of
// loadBlockSize that are kept and reused from chunk to chunk, so that a
// buffer neither copies what it holds as it grows nor asks the heap for new
// memory for each chunk. Change i is entries[i/loadEntryBlock][i%loadEntryBlock].

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
)

const (
	// loadBlockSize is the size of the blocks that hold keys and values; a
	// change larger than that has a block of its own.
	loadBlockSize = 256 << 10
	// loadEntryBlock is how many entries a block of entries holds.
	loadEntryBlock = 8192
	// maxLoadEntries is the most changes a buffer holds: their indexes share
	// a uint64 with 40 bits of their key when sorted.
	maxLoadEntries = 1 << 24
	// loadEntrySize is what a buffer counts for each change it holds
	// besides its key and value: its entry, and its sort key while sorted.
	loadEntrySize = 24
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
	order   []uint64
	scratch []uint64 // for sorting order
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

// sorted returns the indexes of the last change of each key, in key order.
// The slice is the buffer's, valid until the next call.
//
// It sorts integers, not keys: each holds 40 bits of its key, those after
// the prefix that all the keys share, above the change's index, so that one
// stable radix sort of integers in the order of the changes orders them by
// those bits and the changes of one key by their order. Only changes whose
// 40 bits are alike are compared by their whole keys.
func (b *loadBuffer) sorted() []uint64 {
	if b.n == 0 {
		return nil
	}
	first := b.key(b.entry(0))
	common := len(first)
	for i := range uint32(b.n) {
		k := b.key(b.entry(i))
		common = min(common, len(k))
		for j := range common {
			if k[j] != first[j] {
				common = j
				break
			}
		}
	}
	b.order = slices.Grow(b.order[:0], b.n)
	for i := range uint32(b.n) {
		var head [8]byte
		copy(head[:5], b.key(b.entry(i))[common:])
		b.order = append(b.order, binary.BigEndian.Uint64(head[:])|uint64(i))
	}
	b.scratch = slices.Grow(b.scratch[:0], b.n)[:b.n]
	sortByHead(b.order, b.scratch)
	const indexBits = 1<<24 - 1
	index := func(o uint64) uint32 { return uint32(o & indexBits) }
	for lo := 0; lo < len(b.order); {
		hi := lo + 1
		for hi < len(b.order) && b.order[hi]>>24 == b.order[lo]>>24 {
			hi++
		}
		if hi-lo > 1 {
			slices.SortFunc(b.order[lo:hi], func(x, y uint64) int {
				if c := bytes.Compare(b.key(b.entry(index(x))), b.key(b.entry(index(y)))); c != 0 {
					return c
				}
				return cmp.Compare(index(x), index(y))
			})
		}
		lo = hi
	}
	// Keep the last change of each key, as its bare index.
	kept := b.order[:0]
	for i, o := range b.order {
		if i+1 < len(b.order) {
			next := b.order[i+1]
			if next>>24 == o>>24 && bytes.Equal(b.key(b.entry(index(o))), b.key(b.entry(index(next)))) {
				continue
			}
		}
		kept = append(kept, uint64(index(o)))
	}
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

// sortByHead sorts a by its top 40 bits, keeping the order of elements
// alike in them: a least significant digit radix sort, one byte a pass,
// which skips the bytes that every element has alike. tmp must be as long
// as a.
func sortByHead(a, tmp []uint64) {
	var counts [5][256]int
	for _, v := range a {
		for d := range 5 {
			counts[d][byte(v>>(24+8*d))]++
		}
	}
	src, dst := a, tmp
	for d := range 5 {
		c := &counts[d]
		if c[byte(a[0]>>(24+8*d))] == len(a) {
			continue // every element has this byte alike
		}
		at := 0
		for i, n := range c {
			c[i] = at
			at += n
		}
		shift := 24 + 8*d
		for _, v := range src {
			k := byte(v >> shift)
			dst[c[k]] = v
			c[k]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}
