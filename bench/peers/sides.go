package main

// The sides, as they run in a child process. A count side runs until its
// context ends; the parent ends it (SIGTERM) once the side's group has
// committed the offsets of all n records, except raw, which returns once it
// has consumed, produced and committed all n itself (its autocommit may
// commit polled offsets before their outputs are acknowledged). A restore
// side returns once its view has restored the whole table.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
	"github.com/sluice-io/sluice/store/pebble"
)

// commitInterval is how often every side commits its offsets: the shortest
// interval kgo accepts, as in sluice's bench package.
const commitInterval = 100 * time.Millisecond

// side is one side as it runs in the child: it returns when it is done or
// ctx ends, with the rows it holds for a restore side.
type side struct {
	// selfEnding sides return when they are done; the others run until
	// the parent sees their commits and ends them.
	selfEnding bool
	run        func(ctx context.Context, addrs []string, dir string, n int) (rows int64, err error)
}

// group and output topic of each count side, and the order sides run in.
var (
	countSides   = []string{"raw", "sluice", "goka-leveldb", "goka-memory"}
	restoreSides = []string{"restore-raw", "restore-sluice-pebble", "restore-sluice-memory", "restore-goka-leveldb", "restore-goka-memory"}
	// notByDefault are the sides run only when asked for: goka's memory
	// storage sorts all of a partition's keys at every new key, so its
	// restore of a table of distinct keys takes time quadratic in them.
	notByDefault = []string{"restore-goka-memory"}
	groupOf      = map[string]string{"raw": "raw-count", "sluice": "sluice-count", "goka-leveldb": "goka-leveldb-count", "goka-memory": "goka-memory-count"}
)

// outputOf is the topic count side name writes its counts to.
func outputOf(name string) string { return name + "-counts" }

var sides = map[string]side{
	"raw":                   {selfEnding: true, run: rawCount},
	"sluice":                {run: sluiceCount},
	"goka-leveldb":          {run: gokaCount("goka-leveldb", storage.DefaultBuilder)},
	"goka-memory":           {run: gokaCount("goka-memory", memoryBuilder)},
	"restore-raw":           {selfEnding: true, run: rawRestore},
	"restore-sluice-pebble": {selfEnding: true, run: sluiceRestore(func(dir string) store.Builder { return pebble.Builder(dir) })},
	"restore-sluice-memory": {selfEnding: true, run: sluiceRestore(func(string) store.Builder { return memory.Builder() })},
	"restore-goka-leveldb":  {selfEnding: true, run: gokaRestore(storage.DefaultBuilder)},
	"restore-goka-memory":   {selfEnding: true, run: gokaRestore(memoryBuilder)},
}

// memoryBuilder is goka's memory storage, which ignores dir.
func memoryBuilder(string) storage.Builder { return storage.MemoryBuilder() }

// rawCount is the raw side of sluice's BenchmarkCountGroup: a kgo consumer
// group member (cooperative-sticky, autocommit every 100ms) that counts in a
// map, produces each new count asynchronously and, once it has consumed n
// records, flushes and commits synchronously.
func rawCount(ctx context.Context, addrs []string, _ string, n int) (int64, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumerGroup(groupOf["raw"]),
		kgo.ConsumeTopics(inputTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitInterval(commitInterval),
	)
	if err != nil {
		return 0, fmt.Errorf("raw: client: %w", err)
	}
	defer cl.Close()
	counts := make(map[string]int64, keys)
	var produced firstError
	consumed := 0
	for consumed < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("raw: consumed %d of %d records: %w", consumed, n, err)
		}
		if err := fetches.Err0(); err != nil {
			return 0, fmt.Errorf("raw: fetch: %w", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			consumed++
			c := counts[string(r.Key)] + 1
			counts[string(r.Key)] = c
			cl.Produce(ctx, &kgo.Record{Topic: outputOf("raw"), Key: r.Key, Value: strconv.AppendInt(nil, c, 10)}, produced.promise)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("raw: flush: %w", err)
	}
	if err := produced.get(); err != nil {
		return 0, fmt.Errorf("raw: produce: %w", err)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return 0, fmt.Errorf("raw: commit: %w", err)
	}
	return 0, nil
}

// sluiceCount is the sluice side of BenchmarkCountGroup: a processor of a
// group that keeps an int64 per key in Pebble (changelog
// "sluice-count-table") and emits each new count, with CommitInterval(100ms).
func sluiceCount(ctx context.Context, addrs []string, dir string, _ int) (int64, error) {
	g := sluice.DefineGroup[int64](groupOf["sluice"])
	sluice.Persist(g, codec.Int64())
	out := sluice.Output(g, outputOf("sluice"), codec.Int64())
	sluice.Input(g, inputTopic, codec.Bytes(), func(ctx *sluice.Context[int64], _ []byte) error {
		n, _ := ctx.Value()
		n++
		ctx.SetValue(n)
		return out.Emit(ctx, ctx.Key(), n)
	})
	p, err := sluice.NewProcessor(g,
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(dir)),
		sluice.CommitInterval(commitInterval),
	)
	if err != nil {
		return 0, fmt.Errorf("sluice: %w", err)
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return 0, fmt.Errorf("sluice: %w", err)
	}
	return 0, nil
}

// configureGoka sets what goka reads from its process-global Sarama config
// and returns the topic manager builder every goka side uses. Apart from
// these settings goka runs with its defaults (Sarama's protocol version
// 2.0.0, snappy compression, its copartitioning balancer, producer flushes
// every 100ms or 64 KiB).
func configureGoka() goka.TopicManagerBuilder {
	cfg := goka.DefaultConfig()
	// goka reads streams from their newest offset by default; the input
	// is written before the side starts.
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	// Sarama's default is 1s; every side here commits every 100ms.
	cfg.Consumer.Offsets.AutoCommit.Interval = commitInterval
	goka.ReplaceGlobalConfig(cfg)
	// goka creates tables and streams with replication factor 2 by
	// default, which a broker of one node refuses.
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = 1
	tm.Stream.Replication = 1
	return goka.TopicManagerBuilderWithTopicManagerConfig(tm)
}

// gokaCount is the goka side of the count group name: a processor whose
// group table (an int64 per key, in "<group>-table", which goka creates) is
// kept in the storage newStorage makes under dir, and which emits every new
// count as decimal text.
func gokaCount(name string, newStorage func(dir string) storage.Builder) func(context.Context, []string, string, int) (int64, error) {
	return func(ctx context.Context, addrs []string, dir string, _ int) (int64, error) {
		tm := configureGoka()
		output := goka.Stream(outputOf(name))
		g := goka.DefineGroup(goka.Group(groupOf[name]),
			goka.Input(inputTopic, new(gokacodec.Bytes), func(ctx goka.Context, _ interface{}) {
				var n int64
				if v := ctx.Value(); v != nil {
					n = v.(int64)
				}
				n++
				ctx.SetValue(n)
				ctx.Emit(output, ctx.Key(), n)
			}),
			goka.Output(output, new(gokacodec.Int64)),
			goka.Persist(new(gokacodec.Int64)),
		)
		p, err := goka.NewProcessor(addrs, g,
			goka.WithTopicManagerBuilder(tm),
			goka.WithStorageBuilder(newStorage(dir)),
		)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return 0, nil
	}
}

// rawRestore is the raw side of sluice's BenchmarkRestore: a kgo direct
// consumer of every partition of the table from its start, with kgo's
// defaults, which reads until each partition reaches its end offset at the
// start.
func rawRestore(ctx context.Context, addrs []string, _ string, _ int) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return 0, fmt.Errorf("raw: client: %w", err)
	}
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, tableTopic)
	if err == nil {
		err = listed.Error()
	}
	cl.Close()
	if err != nil {
		return 0, fmt.Errorf("raw: end offsets: %w", err)
	}
	ends := make(map[int32]int64)
	from := make(map[int32]kgo.Offset)
	listed.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			ends[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	cl, err = kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{tableTopic: from}),
	)
	if err != nil {
		return 0, fmt.Errorf("raw: client: %w", err)
	}
	defer cl.Close()
	var rows int64
	for len(ends) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return rows, fmt.Errorf("raw: read %d rows: %w", rows, err)
		}
		if err := fetches.Err0(); err != nil {
			return rows, fmt.Errorf("raw: fetch: %w", err)
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			rows += int64(len(fp.Records))
			if len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset+1 >= ends[fp.Partition] {
				delete(ends, fp.Partition)
			}
		})
	}
	return rows, nil
}

// sluiceRestore is the view side of sluice's BenchmarkRestore: a View of the
// table whose stores newStorage makes in the empty dir, done when WaitReady
// returns.
func sluiceRestore(newStorage func(dir string) store.Builder) func(context.Context, []string, string, int) (int64, error) {
	return func(ctx context.Context, addrs []string, dir string, _ int) (int64, error) {
		v, err := sluice.NewView(tableTopic, codec.Bytes(),
			sluice.Brokers(addrs...),
			sluice.TopicDefaults(partitions, 1),
			sluice.Storage(newStorage(dir)),
		)
		if err != nil {
			return 0, fmt.Errorf("sluice view: %w", err)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- v.Run(ctx) }()
		if err := v.WaitReady(ctx); err != nil {
			return 0, fmt.Errorf("sluice view: %w", err)
		}
		markDone()
		var rows int64
		if err := v.Iterate("", "", func(string, []byte) bool { rows++; return true }); err != nil {
			return 0, fmt.Errorf("sluice view: %w", err)
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return rows, fmt.Errorf("sluice view: %w", err)
		}
		return rows, nil
	}
}

// gokaRestore is goka's view of the same table, with its partitions in the
// storage newStorage makes in the empty dir, done when it enters the running
// state, which it does once every partition has recovered to the end.
func gokaRestore(newStorage func(dir string) storage.Builder) func(context.Context, []string, string, int) (int64, error) {
	return func(ctx context.Context, addrs []string, dir string, _ int) (int64, error) {
		tm := configureGoka()
		v, err := goka.NewView(addrs, goka.Table(tableTopic), new(gokacodec.Bytes),
			goka.WithViewTopicManagerBuilder(tm),
			goka.WithViewStorageBuilder(newStorage(dir)),
		)
		if err != nil {
			return 0, fmt.Errorf("goka view: %w", err)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- v.Run(ctx) }()
		select {
		case <-v.WaitRunning():
		case err := <-done:
			return 0, fmt.Errorf("goka view stopped before it recovered: %w", err)
		case <-ctx.Done():
			return 0, fmt.Errorf("goka view: %w", ctx.Err())
		}
		markDone()
		it, err := v.Iterator()
		if err != nil {
			return 0, fmt.Errorf("goka view: iterator: %w", err)
		}
		var rows int64
		for it.Next() {
			rows++
		}
		it.Release()
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return rows, fmt.Errorf("goka view: %w", err)
		}
		return rows, nil
	}
}
