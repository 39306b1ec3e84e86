package sluice

// Tests of a task's pipeline on the embedded broker: with MaxBatch(1) every
// record is a batch of its own, so each record is processed while the
// write of the one before is in flight, still to be settled.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// pipelineBroker starts an embedded broker for one test.
func pipelineBroker(t *testing.T) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// pipelineCounter counts the records of each key and emits "<key>:<count>"
// to name-out for each. before, if not nil, runs first with the record's
// value; the error it returns fails the record, and a value it returns
// replaces the output's.
func pipelineCounter(name string, before func(ctx *Context[int64], v string) (string, error)) *Group[int64] {
	g := DefineGroup[int64](name)
	Persist(g, codec.Int64())
	out := Output(g, name+"-out", codec.String())
	Input(g, name+"-in", codec.String(), func(ctx *Context[int64], v string) error {
		var value string
		if before != nil {
			var err error
			if value, err = before(ctx, v); err != nil {
				return err
			}
		}
		n, _ := ctx.Value()
		n++
		ctx.SetValue(n)
		if value == "" {
			value = fmt.Sprintf("%s:%d", ctx.Key(), n)
		}
		return out.Emit(ctx, ctx.Key(), value)
	})
	return g
}

func pipelineOpts(b *broker.Broker, partitions int32, dir string, extra ...ProcessorOpt) []ProcessorOpt {
	return append([]ProcessorOpt{
		Brokers(b.Addrs()...), TopicDefaults(partitions, 1), Storage(pebble.Builder(dir)),
		CommitInterval(200 * time.Millisecond), MaxBatch(1),
	}, extra...)
}

// emitAll writes kvs (key, value, key, value...) to topic and waits for them.
func emitAll(t *testing.T, b *broker.Broker, partitions int32, topic string, kvs ...string) {
	t.Helper()
	em, err := NewEmitter(topic, codec.String(), Brokers(b.Addrs()...), TopicDefaults(partitions, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := 0; i+1 < len(kvs); i += 2 {
		em.EmitAsync(kvs[i], kvs[i+1], func(err error) {
			if err != nil {
				t.Errorf("emit: %v", err)
			}
		})
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// readToEnd reads topic, read committed, to the end of every partition, and
// returns its values by key, in order.
func readToEnd(t *testing.T, b *broker.Broker, topic string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	got := map[string][]string{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: partitions %v not read to their end", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				got[string(r.Key)] = append(got[string(r.Key)], string(r.Value))
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return got
}

// wantCounts checks that the outputs of each key are key:1 to key:n, once
// each, in order.
func wantCounts(t *testing.T, got map[string][]string, want map[string]int) {
	t.Helper()
	for k, n := range want {
		var exp []string
		for i := 1; i <= n; i++ {
			exp = append(exp, fmt.Sprintf("%s:%d", k, i))
		}
		if strings.Join(got[k], " ") != strings.Join(exp, " ") {
			t.Errorf("outputs of %s = %v, want %v", k, got[k], exp)
		}
	}
}

// committedOffset returns the group's committed offset of partition 0 of
// topic, -1 if none.
func committedOffset(t *testing.T, b *broker.Broker, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); ok {
		return o.At
	}
	return -1
}

// runUntil runs p until stop is called, and returns what Run returned.
func runUntil[V any](p *Processor[V]) (done <-chan error, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- p.Run(ctx) }()
	return ch, cancel
}

// awaitStopped stops a processor and checks it stopped cleanly.
func awaitStopped(t *testing.T, done <-chan error, stop func()) {
	t.Helper()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("processor did not stop within 30s")
	}
}

func TestPipelinedBatchesCountAKeyChangedInConsecutiveBatchesExactly(t *testing.T) {
	b := pipelineBroker(t)
	for _, g := range []DeliveryGuarantee{AtLeastOnce, ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			name := "consecutive-" + g.String()
			var kvs []string
			want := map[string]int{}
			for i := range 300 {
				// One key in most records, so that it changes in
				// every batch.
				k := "hot"
				if i%5 == 4 {
					k = fmt.Sprintf("cold-%d", i%3)
				}
				kvs = append(kvs, k, "x")
				want[k]++
			}
			emitAll(t, b, 1, name+"-in", kvs...)
			p, err := NewProcessor(pipelineCounter(name, nil), pipelineOpts(b, 1, t.TempDir(), Guarantee(g))...)
			if err != nil {
				t.Fatal(err)
			}
			done, stop := runUntil(p)
			waitUntil(t, func() error {
				if at := committedOffset(t, b, name, name+"-in"); at != 300 {
					return fmt.Errorf("committed offset %d, want 300", at)
				}
				return nil
			})
			awaitStopped(t, done, stop)
			wantCounts(t, readToEnd(t, b, name+"-out"), want)
			table := readToEnd(t, b, name+"-table")
			for k, n := range want {
				vs := table[k]
				if len(vs) == 0 || vs[len(vs)-1] != fmt.Sprint(n) {
					t.Errorf("table row of %s = %v, want last %d", k, vs, n)
				}
			}
		})
	}
}

func TestPipelinedWriteThatFailsInTheSecondBatchLeavesTheFirstCommitted(t *testing.T) {
	b := pipelineBroker(t)
	for _, g := range []DeliveryGuarantee{AtLeastOnce, ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			name := "second-fails-" + g.String()
			// The second record's output is larger than the client
			// writes, once: the write of the second batch fails while
			// the first is in flight.
			var huge atomic.Bool
			huge.Store(true)
			group := pipelineCounter(name, func(_ *Context[int64], v string) (string, error) {
				if v == "huge" && huge.CompareAndSwap(true, false) {
					return strings.Repeat("h", 2<<20), nil
				}
				return "", nil
			})
			emitAll(t, b, 1, name+"-in", "a", "x", "a", "huge", "a", "x", "a", "x")
			dir := t.TempDir()
			p, err := NewProcessor(group, pipelineOpts(b, 1, dir, Guarantee(g))...)
			if err != nil {
				t.Fatal(err)
			}
			done, stop := runUntil(p)
			select {
			case err := <-done:
				if !errors.Is(err, kerr.MessageTooLarge) {
					t.Fatalf("run = %v, want the failed write's error", err)
				}
			case <-time.After(30 * time.Second):
				stop()
				t.Fatal("the processor went on after a write failed")
			}
			stop()
			at := committedOffset(t, b, name, name+"-in")
			switch g {
			case AtLeastOnce:
				// The first batch was acknowledged and settled before the
				// second's failure was: it stays committed, and nothing
				// of the failed batch is.
				if at != 1 {
					t.Errorf("committed offset after the failure = %d, want 1: the first batch only", at)
				}
			case ExactlyOnce:
				// The transaction held both: both are redone.
				if at > 0 {
					t.Errorf("committed offset after the failure = %d, want none: the transaction aborted", at)
				}
			}

			p, err = NewProcessor(group, pipelineOpts(b, 1, dir, Guarantee(g))...)
			if err != nil {
				t.Fatal(err)
			}
			done, stop = runUntil(p)
			waitUntil(t, func() error {
				if at := committedOffset(t, b, name, name+"-in"); at != 4 {
					return fmt.Errorf("committed offset %d, want 4", at)
				}
				return nil
			})
			awaitStopped(t, done, stop)
			out := readToEnd(t, b, name+"-out")["a"]
			switch g {
			case AtLeastOnce:
				// The failed batch's changelog record may have been
				// written: the redone record counts on top of it.
				var last int
				if len(out) > 0 {
					_, _ = fmt.Sscanf(out[len(out)-1], "a:%d", &last)
				}
				if len(out) < 3 || out[0] != "a:1" || last < 4 {
					t.Errorf("outputs = %v, want a:1 then the redone records counting to 4 at least", out)
				}
			case ExactlyOnce:
				wantCounts(t, map[string][]string{"a": out}, map[string]int{"a": 4})
			}
		})
	}
}

func TestRevocationMidPipelineCommitsOnlyAcknowledgedWorkAndCountsStayExact(t *testing.T) {
	b := pipelineBroker(t)
	const parts = 2
	name := "revoke-mid"
	// The first processor's handler holds the record "gate" until the
	// revocation has asked its task to stop: the write of the record
	// before is in flight, unsettled, when the stop comes.
	atGate := make(chan *Context[int64], 1)
	release := make(chan struct{})
	var once sync.Once
	first := pipelineCounter(name, func(ctx *Context[int64], v string) (string, error) {
		if v == "gate" {
			once.Do(func() {
				atGate <- ctx
				<-release
			})
		}
		return "", nil
	})
	want := map[string]int{}
	var kvs []string
	for i := range 200 {
		k := fmt.Sprintf("k%d", i%8)
		kvs = append(kvs, k, "x")
		want[k]++
	}
	kvs = append(kvs, "k0", "gate")
	want["k0"]++
	emitAll(t, b, parts, name+"-in", kvs...)

	p1, err := NewProcessor(first, pipelineOpts(b, parts, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	done1, stop1 := runUntil(p1)
	var ctx *Context[int64]
	select {
	case ctx = <-atGate:
	case err := <-done1:
		t.Fatalf("first processor stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the gate record was not handled within 30s")
	}
	p1.mu.Lock()
	task := p1.tasks[ctx.Partition()]
	p1.mu.Unlock()
	if task == nil {
		t.Fatalf("no task of partition %d at the gate", ctx.Partition())
	}

	p2, err := NewProcessor(pipelineCounter(name, nil), pipelineOpts(b, parts, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	done2, stop2 := runUntil(p2)
	select {
	case <-task.stop:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("the second processor's join did not revoke the gated partition within 30s")
	}
	close(release)

	// More records after the takeover, for both owners.
	var more []string
	for i := range 40 {
		k := fmt.Sprintf("k%d", i%8)
		more = append(more, k, "y")
		want[k]++
	}
	emitAll(t, b, parts, name+"-in", more...)
	waitUntil(t, func() error {
		got := readToEnd(t, b, name+"-out")
		for k, n := range want {
			if len(got[k]) < n {
				return fmt.Errorf("%s: %d outputs, want %d", k, len(got[k]), n)
			}
		}
		return nil
	})
	awaitStopped(t, done1, stop1)
	awaitStopped(t, done2, stop2)
	wantCounts(t, readToEnd(t, b, name+"-out"), want)
}

// waitUntil polls cond until it returns nil, for 30s at most.
func waitUntil(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met after 30s: %v", err)
}
