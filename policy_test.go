package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// sumGroup sums int64 amounts per key. Before it fails, the handler of a
// negative amount changes the row and emits, so the tests can see that a
// failed record leaves no effects.
func sumGroup(name, input string) *sluice.Group[int64] {
	g := sluice.DefineGroup[int64](name)
	sluice.Persist(g, codec.Int64())
	echo := sluice.Output(g, name+"-echo", codec.Int64())
	sluice.Input(g, input, codec.Int64(), func(ctx *sluice.Context[int64], n int64) error {
		sum, _ := ctx.Value()
		ctx.SetValue(sum + n)
		if err := echo.Emit(ctx, ctx.Key(), n); err != nil {
			return err
		}
		switch {
		case n < 0:
			return fmt.Errorf("negative amount %d", n)
		case n == 13:
			panic("unlucky")
		}
		return nil
	})
	return g
}

// emitAmounts writes values to partition 0 of topic, in order.
func emitAmounts(t *testing.T, em *sluice.Emitter[string], key string, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := em.EmitToPartition(context.Background(), 0, key, v, sluice.Header{Key: "trace", Value: []byte("t-" + v)}); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads every record of topic from the start.
func readAll(t *testing.T, addrs []string, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(recs), want, topic)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func runUntil(t *testing.T, p interface{ Stats() sluice.Stats }, cond func(sluice.Stats) bool) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		if s := p.Stats(); !cond(s) {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
}

func TestSkipPolicyGoesPastFailedRecordsWithoutTheirEffects(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "skip-in", emitterOpts(b, parts))
	// "x" does not decode, -5 makes the handler fail, 13 makes it panic.
	emitAmounts(t, em, "k", "1", "x", "2", "-5", "13", "4")

	p, err := sluice.NewProcessor(sumGroup("skipper", "skip-in"), append(processorOpts(b, parts, t.TempDir()), sluice.OnError(sluice.Skip))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	runUntil(t, p, func(s sluice.Stats) bool { return s.Skipped == 3 })

	v := startView(t, "skipper-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		if got, err := v.Get("k"); err != nil || got != 7 {
			return fmt.Errorf("sum %d (%v), want 7 = 1+2+4", got, err)
		}
		return nil
	})
	var echoed []string
	for _, r := range readAll(t, b.Addrs(), "skipper-echo", 3) {
		echoed = append(echoed, string(r.Value))
	}
	if fmt.Sprint(echoed) != "[1 2 4]" {
		t.Fatalf("echoed %v, want only the records that succeeded: [1 2 4]", echoed)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestDeadLetterPolicyWritesFailedRecordsWithReasonHeaders(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "dl-in", emitterOpts(b, parts))
	emitAmounts(t, em, "k", "1", "x", "-5", "13", "2")

	p, err := sluice.NewProcessor(sumGroup("lettered", "dl-in"), append(processorOpts(b, parts, t.TempDir()), sluice.OnError(sluice.DeadLetter("dl-out")))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	runUntil(t, p, func(s sluice.Stats) bool { return s.DeadLettered == 3 })

	letters := readAll(t, b.Addrs(), "dl-out", 3)
	wantKinds := map[string]string{"x": "decode", "-5": "handler", "13": "panic"}
	wantOffsets := map[string]int64{"x": 1, "-5": 2, "13": 3}
	for _, r := range letters {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		v := string(r.Value)
		if string(r.Key) != "k" || h["trace"] != "t-"+v {
			t.Errorf("dead letter %q: key %q, trace header %q: the original key and headers must be kept", v, r.Key, h["trace"])
		}
		if h[sluice.HeaderErrorKind] != wantKinds[v] || h[sluice.HeaderError] == "" {
			t.Errorf("dead letter %q: kind %q error %q, want kind %q", v, h[sluice.HeaderErrorKind], h[sluice.HeaderError], wantKinds[v])
		}
		if h[sluice.HeaderSourceTopic] != "dl-in" || h[sluice.HeaderSourcePartition] != "0" ||
			h[sluice.HeaderSourceOffset] != strconv.FormatInt(wantOffsets[v], 10) || h[sluice.HeaderGroup] != "lettered" {
			t.Errorf("dead letter %q: source %s/%s@%s group %s, want dl-in/0@%d group lettered",
				v, h[sluice.HeaderSourceTopic], h[sluice.HeaderSourcePartition], h[sluice.HeaderSourceOffset], h[sluice.HeaderGroup], wantOffsets[v])
		}
		if _, err := time.Parse(time.RFC3339Nano, h[sluice.HeaderFailedAt]); err != nil {
			t.Errorf("dead letter %q: failed-at %q: %v", v, h[sluice.HeaderFailedAt], err)
		}
	}
	v := startView(t, "lettered-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		if got, err := v.Get("k"); err != nil || got != 3 {
			return fmt.Errorf("sum %d (%v), want 3 = 1+2", got, err)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestFailPolicyIsTheDefaultAndCommitsNothingPastTheFailure(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "fail-in", emitterOpts(b, parts))
	emitAmounts(t, em, "k", "1", "2", "-5", "4")
	dir := t.TempDir()
	for range 2 {
		p, err := sluice.NewProcessor(sumGroup("failer", "fail-in"), processorOpts(b, parts, dir)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = p.Run(ctx)
		cancel()
		var rerr *sluice.RecordError
		if !errors.As(err, &rerr) || rerr.Offset != 2 {
			t.Fatalf("run: %v, want a RecordError at offset 2 (and the same again after a restart)", err)
		}
	}
	v := startView(t, "failer-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		if got, err := v.Get("k"); err != nil || got != 3 {
			return fmt.Errorf("sum %d (%v), want 3: the records before the failure, once", got, err)
		}
		return nil
	})
}

func TestDeadLetterTopicMustNotBeOneOfTheGroupsTopics(t *testing.T) {
	_, err := sluice.NewProcessor(sumGroup("loopy", "loopy-in"), sluice.OnError(sluice.DeadLetter("loopy-in")))
	if err == nil {
		t.Fatal("a dead-letter topic that is the group's input was accepted")
	}
}

// A handler cut short by the processor's stop fails because of the stop,
// not because of its record: whatever the policy, the record is neither
// skipped nor dead-lettered nor committed, and the next run handles it.
func TestAHandlerFailingBecauseTheProcessorStopsLeavesItsRecordForTheNextRun(t *testing.T) {
	for _, policy := range []sluice.Policy{sluice.Skip, sluice.DeadLetter("stopped-dead"), sluice.Fail} {
		t.Run(policy.String(), func(t *testing.T) {
			b := startBroker(t)
			const parts = 1
			name := "stopped-" + strings.Fields(policy.String())[0]
			em := newEmitter(t, name+"-in", emitterOpts(b, parts))
			em.EmitAsync("k", "first", nil)
			if err := em.Close(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()

			entered := make(chan struct{})
			g := sluice.DefineGroup[counter](name)
			sluice.Persist(g, codec.JSON[counter]())
			sluice.Input(g, name+"-in", codec.String(), func(ctx *sluice.Context[counter], _ string) error {
				close(entered)
				<-ctx.Context().Done() // an I/O call the stop cuts short
				return fmt.Errorf("call: %w", ctx.Context().Err())
			})
			r := runProcessor(t, g, append(processorOpts(b, parts, dir), sluice.OnError(policy))...)
			await(t, entered, 30*time.Second, "the handler to start")
			r.stop(t)

			// The next run counts the record: nothing skipped it.
			r2 := runProcessor(t, defineCounter(name, name+"-in"), append(processorOpts(b, parts, dir), sluice.OnError(policy))...)
			v := startView(t, name+"-table", codec.JSON[counter](), viewOpts(b, parts)...)
			expectCounts(t, v, map[string]int64{"k": 1}, 30*time.Second)
			r2.stop(t)
		})
	}
}

// A record whose input codec panics did not decode: it is dead-lettered
// with kind decode, as when the codec returns an error.
func TestDeadLetterOfARecordItsCodecPanicsOnHasKindDecode(t *testing.T) {
	b := startBroker(t)
	em := newEmitter(t, "codec-panic-in", emitterOpts(b, 1))
	emitAmounts(t, em, "k", "a", "", "b")
	g := sluice.DefineGroup[int64]("codec-panic")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "codec-panic-in", firstByte{}, func(ctx *sluice.Context[int64], _ byte) error {
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		return nil
	})
	runProcessor(t, g, append(processorOpts(b, 1, t.TempDir()), sluice.OnError(sluice.DeadLetter("codec-panic-dead")))...)
	dead := readAll(t, b.Addrs(), "codec-panic-dead", 1)
	hs := map[string]string{}
	for _, h := range dead[0].Headers {
		hs[h.Key] = string(h.Value)
	}
	if hs[sluice.HeaderErrorKind] != "decode" || hs[sluice.HeaderSourceOffset] != "1" || !strings.Contains(hs[sluice.HeaderError], "codec panicked") {
		t.Errorf("dead letter headers %v, want kind decode of offset 1, saying the codec panicked", hs)
	}
}
