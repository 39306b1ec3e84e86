package main

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// readPartitions reads topic's partitions from the offsets in from and calls
// fn with each data record in offset order per partition, until fn returns
// false or ctx is done. With until set, a partition is read up to the offset
// until[p] (exclusive) and reading ends when every partition got there;
// partitions missing from until, or with nothing between from and until, are
// not read. With until nil, reading follows new records until ctx is done.
//
// cl must keep control records (kgo.KeepControlRecords): a partition written
// with transactions ends with a commit marker, and only seeing the marker
// tells that the partition's end offset was reached.
func readPartitions(ctx context.Context, cl *kgo.Client, topic string, from, until map[int32]int64, fn func(*kgo.Record) bool) error {
	next := make(map[int32]int64, len(from))
	start := make(map[int32]kgo.Offset, len(from))
	for p, o := range from {
		if until != nil {
			if end, ok := until[p]; !ok || o >= end {
				continue
			}
		}
		next[p] = o
		start[p] = kgo.NewOffset().At(o)
	}
	if len(start) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	defer cl.RemoveConsumePartitions(map[string][]int32{topic: keys(start)})
	left := len(start)
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("read %s/%d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		stop := false
		fetches.EachRecord(func(r *kgo.Record) {
			if stop || r.Topic != topic {
				return
			}
			n, reading := next[r.Partition]
			if !reading || r.Offset < n {
				return
			}
			if until != nil && r.Offset >= until[r.Partition] {
				return
			}
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() && !fn(r) {
				stop = true
				return
			}
			if until != nil && r.Offset+1 >= until[r.Partition] {
				delete(next, r.Partition)
				left--
			}
		})
		if stop || (until != nil && left == 0) {
			return nil
		}
	}
}

func keys[V any](m map[int32]V) []int32 {
	ks := make([]int32, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
