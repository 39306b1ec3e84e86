package sluice

import (
	"bytes"
	"container/heap"

	"github.com/sluice-io/sluice/store"
)

// mergeIterators calls fn with the rows of its in ascending key order, until
// fn returns false or an error. Each iterator must already be sorted.
func mergeIterators(its []store.Iterator, fn func(k, v []byte) (bool, error)) error {
	h := make(iterHeap, 0, len(its))
	for _, it := range its {
		if it.Next() {
			h = append(h, it)
		} else if err := it.Err(); err != nil {
			return err
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		it := h[0]
		more, err := fn(it.Key(), it.Value())
		if err != nil || !more {
			return err
		}
		if it.Next() {
			heap.Fix(&h, 0)
			continue
		}
		if err := it.Err(); err != nil {
			return err
		}
		heap.Pop(&h)
	}
	return nil
}

type iterHeap []store.Iterator

func (h iterHeap) Len() int           { return len(h) }
func (h iterHeap) Less(i, j int) bool { return bytes.Compare(h[i].Key(), h[j].Key()) < 0 }
func (h iterHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *iterHeap) Push(x any)        { *h = append(*h, x.(store.Iterator)) }
func (h *iterHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
