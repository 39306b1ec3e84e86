package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// echoCounter counts records per key and emits "<key>:<count>" for each;
// a record "boom" makes the handler fail.
func echoCounter(name, input string) *sluice.Group[int64] {
	g := sluice.DefineGroup[int64](name)
	sluice.Persist(g, codec.Int64())
	out := sluice.Output(g, name+"-out", codec.String())
	sluice.Input(g, input, codec.String(), func(ctx *sluice.Context[int64], v string) error {
		if v == "boom" {
			return errors.New("boom")
		}
		n, _ := ctx.Value()
		n++
		ctx.SetValue(n)
		return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s:%d", ctx.Key(), n))
	})
	return g
}

// readTopic reads topic to its end with the given isolation: to the high
// watermark of every partition, or read committed to its last stable
// offset, control records included, so that a slow first fetch is never
// taken for the end of the topic.
func readTopic(t *testing.T, addrs []string, topic string, committed bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords()}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	list := kadm.NewClient(cl).ListEndOffsets
	if committed {
		list = kadm.NewClient(cl).ListCommittedOffsets
	}
	ends, err := list(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{} // partitions not read to their end, and their end
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var vals []string
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: partitions %v not read to their end within 30s", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				vals = append(vals, string(r.Value))
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return vals
}

func TestExactlyOnceProcessorCountsAndEmitsEachRecordOnce(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	em := newEmitter(t, "eos-in", emitterOpts(b, parts))
	want := map[string]int64{}
	emitN(t, em, 600, 12, want)

	opts := append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce))
	p, err := sluice.NewProcessor(echoCounter("eos", "eos-in"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	v := startView(t, "eos-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 30*time.Second, func() error {
		for k, n := range want {
			if got, err := v.Get(k); err != nil || got != n {
				return fmt.Errorf("count of %s: %d (%v), want %d", k, got, err, n)
			}
		}
		return nil
	})
	emitN(t, em, 120, 12, want)
	waitFor(t, 30*time.Second, func() error {
		for k, n := range want {
			if got, err := v.Get(k); err != nil || got != n {
				return fmt.Errorf("count of %s: %d (%v), want %d", k, got, err, n)
			}
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if s := p.Stats(); s.Commits == 0 {
		t.Fatalf("stats %+v: no transaction committed", s)
	}
	outs := readTopic(t, b.Addrs(), "eos-out", true)
	seen := map[string]bool{}
	for _, o := range outs {
		if seen[o] {
			t.Fatalf("output %q committed twice", o)
		}
		seen[o] = true
	}
	if len(outs) != 720 {
		t.Fatalf("%d committed outputs, want 720", len(outs))
	}
}

func TestExactlyOnceAbortedWorkLeavesNoTraceAndIsRedoneOnce(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "abort-in", emitterOpts(b, parts))
	ctx := context.Background()
	for _, v := range []string{"a", "b", "c", "boom", "d"} {
		if err := em.EmitToPartition(ctx, 0, "k", v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// One long transaction: the failure at "boom" aborts a, b and c too.
	opts := append(processorOpts(b, parts, dir), sluice.Guarantee(sluice.ExactlyOnce), sluice.CommitInterval(10*time.Second))
	p, err := sluice.NewProcessor(echoCounter("aborter", "abort-in"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = p.Run(rctx)
	cancel()
	if err == nil || !containsAll(err.Error(), "boom", "abort-in/0@3") {
		t.Fatalf("run: %v, want the failure at abort-in/0@3", err)
	}
	if got := readTopic(t, b.Addrs(), "aborter-out", false); len(got) != 3 {
		t.Fatalf("uncommitted outputs %v: want the 3 written before the failure, so that an abort was really tested", got)
	}
	if got := readTopic(t, b.Addrs(), "aborter-out", true); len(got) != 0 {
		t.Fatalf("committed outputs %v after the abort, want none", got)
	}
	// a, b, c and boom at least were handed out in the aborted transaction.
	if s := p.Stats(); s.Redone < 4 {
		t.Fatalf("stats %+v: want the aborted transaction's records, 4 or more, counted as redone", s)
	}

	// Run again, skipping the bad record: a, b, c and d count once each.
	opts = append(processorOpts(b, parts, dir), sluice.Guarantee(sluice.ExactlyOnce), sluice.OnError(sluice.Skip))
	r := runProcessor(t, echoCounter("aborter", "abort-in"), opts...)
	v := startView(t, "aborter-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		if got, err := v.Get("k"); err != nil || got != 4 {
			return fmt.Errorf("count %d (%v), want 4", got, err)
		}
		return nil
	})
	r.stop(t)
	got := readTopic(t, b.Addrs(), "aborter-out", true)
	if fmt.Sprint(got) != "[k:1 k:2 k:3 k:4]" {
		t.Fatalf("committed outputs %v, want [k:1 k:2 k:3 k:4]", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// A second exactly-once processor joins while the first has the records of
// all four partitions in its open transaction. The partitions that stay with
// the first processor must not redo that work: the rebalance must not abort
// it. Counts stay exact.
func TestExactlyOnceRebalanceRedoesNoWorkOfThePartitionsThatStay(t *testing.T) {
	b := startBroker(t)
	const parts, n = 4, 400
	em := newEmitter(t, "stay-in", emitterOpts(b, parts))
	want := map[string]int64{}
	emitN(t, em, n, 40, want)

	// How often the first processor's handler saw each record.
	type at struct {
		partition int32
		offset    int64
	}
	var mu sync.Mutex
	seenByFirst := map[at]int{}
	group := func(first bool) *sluice.Group[counter] {
		g := sluice.DefineGroup[counter]("stay")
		sluice.Persist(g, codec.JSON[counter]())
		sluice.Input(g, "stay-in", codec.String(), func(ctx *sluice.Context[counter], _ string) error {
			if first {
				mu.Lock()
				seenByFirst[at{ctx.Partition(), ctx.Offset()}]++
				mu.Unlock()
			}
			c, _ := ctx.Value()
			c.Count++
			ctx.SetValue(c)
			return nil
		})
		return g
	}

	// A long transaction, shorter than the transaction timeout: it is
	// still open when the second processor joins.
	opts := append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce), sluice.CommitInterval(8*time.Second))
	first, err := sluice.NewProcessor(group(true), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r1 := runInBackground(t, first.Run)
	waitFor(t, 30*time.Second, func() error {
		if s := first.Stats(); s.Consumed != n {
			return fmt.Errorf("first processor consumed %d of %d", s.Consumed, n)
		}
		return nil
	})
	if s := first.Stats(); s.Commits != 0 {
		t.Fatalf("stats %+v: the first transaction committed before the second processor joined; nothing is tested", s)
	}

	opts = append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce))
	second, err := sluice.NewProcessor(group(false), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r2 := runInBackground(t, second.Run)
	running := func(p *sluice.Processor[counter]) []int32 {
		var ps []int32
		for _, st := range p.Stats().Partitions {
			if st.State == "running" {
				ps = append(ps, st.Partition)
			}
		}
		return ps
	}
	waitFor(t, 30*time.Second, func() error {
		if a, b := running(first), running(second); len(a) != parts/2 || len(b) != parts/2 {
			return fmt.Errorf("partitions running: first %v, second %v; want %d each", a, b, parts/2)
		}
		return nil
	})
	stayed := running(first)

	v := startView(t, "stay-table", codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)
	emitN(t, em, n, 40, want)
	expectCounts(t, v, want, 30*time.Second)

	for _, st := range first.Stats().Partitions {
		if slices.Contains(stayed, st.Partition) && st.Redone != 0 {
			t.Errorf("partition %d stayed with the first processor and redid %d records", st.Partition, st.Redone)
		}
	}
	mu.Lock()
	var again []string
	for k, times := range seenByFirst {
		if slices.Contains(stayed, k.partition) && times != 1 {
			again = append(again, fmt.Sprintf("stay-in/%d@%d %d times", k.partition, k.offset, times))
		}
	}
	mu.Unlock()
	if len(again) > 0 {
		slices.Sort(again)
		t.Errorf("the first processor processed %d records of the partitions that stayed more than once: %s ...", len(again), strings.Join(again[:min(len(again), 5)], ", "))
	}
	t.Logf("first processor: %+v", first.Stats())
	r2.stop(t)
	r1.stop(t)
}
