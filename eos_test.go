package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// readTopic reads topic to its end with the given isolation.
func readTopic(t *testing.T, addrs []string, topic string, committed bool) []string {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var vals []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return vals
		}
		fs.EachRecord(func(r *kgo.Record) { vals = append(vals, string(r.Value)) })
	}
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
