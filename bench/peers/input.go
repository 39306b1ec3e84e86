package main

// The input of the count group and the table of the restore, written by the
// parent to each broker before a side runs. The rules are those of
// sluice's bench package (bench/countgroup_test.go and bench/restore_test.go),
// copied here because a test file of another module cannot be imported:
// inputKey, inputValue, tableKey and tableValue must stay byte for byte the
// same as theirs, so that the figures of both compare.

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// partitions is the partition count of every topic.
	partitions = 10
	// keys is how many distinct keys the input records spread over.
	keys = 10_000
	// valueSize is the size of an input record's value.
	valueSize = 110

	inputTopic = "input"
	// tableTopic is the compacted table every restore side reads.
	tableTopic = "bench-table"
)

// inputKey is the key of input record i.
func inputKey(i int) []byte { return strconv.AppendInt([]byte("key-"), int64(i%keys), 10) }

// inputValue is the value of input record i: a JSON event of valueSize bytes
// whose fields vary from record to record, so that it compresses about as
// well as real events do.
func inputValue(i int) []byte {
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	next := func() uint64 { // xorshift64
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	v := fmt.Appendf(nil, `{"seq":%d,"user":"key-%d","page":"/p/%x","agent":"%x","ms":%d,"pad":"`,
		i, i%keys, next()%(1<<20), next(), next()%1000)
	for len(v) < valueSize-2 {
		v = append(v, 'a'+byte(next()%26))
	}
	return append(v, '"', '}')[:valueSize]
}

// tableKey is the key of table row i: every row has a key of its own, so
// compaction cannot shrink the table.
func tableKey(i int) []byte { return strconv.AppendInt([]byte("row-"), int64(i), 10) }

// tableValue is the 16-byte value of table row i.
func tableValue(i int) []byte { return fmt.Appendf(nil, "value-%010d", i) }

// fillInput creates the input topic and the given output topics and writes
// the n input records, placed by murmur2 (kgo's default partitioner).
func fillInput(ctx context.Context, addrs []string, n int, outputs ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return fmt.Errorf("fill: client: %w", err)
	}
	defer cl.Close()
	for _, t := range append([]string{inputTopic}, outputs...) {
		if err := createTopic(ctx, cl, t, false); err != nil {
			return err
		}
	}
	return produceAll(ctx, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: inputTopic, Key: inputKey(i), Value: inputValue(i)}
	})
}

// fillTable creates the compacted table topic and writes its n rows.
func fillTable(ctx context.Context, addrs []string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return fmt.Errorf("fill: client: %w", err)
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, tableTopic, true); err != nil {
		return err
	}
	return produceAll(ctx, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: tableTopic, Key: tableKey(i), Value: tableValue(i)}
	})
}

// createTopic creates topic with partitions partitions, compacted if asked.
func createTopic(ctx context.Context, cl *kgo.Client, topic string, compacted bool) error {
	var configs map[string]*string
	if compacted {
		configs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// produceAll writes the n records made by rec and waits for all of them to
// be acknowledged.
func produceAll(ctx context.Context, cl *kgo.Client, n int, rec func(i int) *kgo.Record) error {
	var produced firstError
	for i := range n {
		cl.Produce(ctx, rec(i), produced.promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := produced.get(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// endOffsets returns the sum of the high watermarks of topic's partitions.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var sum int64
	listed.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, nil
}

// firstError keeps the first error of produce promises called from many
// goroutines.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) promise(_ *kgo.Record, err error) {
	if err != nil {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
