package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

func TestEmitProcessViewRoundTrip(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	g := defineCounter("roundtrip", "clicks")
	runProcessor(t, g, processorOpts(b, parts, t.TempDir())...)

	em, err := sluice.NewEmitter("clicks", codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	want := make(map[string]int64)
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i%10)
		want[key]++
		em.EmitAsync(key, time.Now().String(), nil)
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	v := startView(t, g.TableTopic(), codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)

	if _, err := v.Get("nobody"); err != sluice.ErrNotFound {
		t.Fatalf("get of a missing key: err %v, want ErrNotFound", err)
	}
	var keys []string
	if err := v.Iterate("user-3", "user-6", func(k string, _ counter) bool {
		keys = append(keys, k)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[user-3 user-4 user-5]" {
		t.Fatalf("iterate [user-3, user-6): got %v", keys)
	}
}

// countingGroup counts records per key like defineCounter and also counts
// handler calls, to tell processing from restoring.
func countingGroup(name, input string, calls *atomic.Int64) *sluice.Group[counter] {
	g := sluice.DefineGroup[counter](name)
	sluice.Persist(g, codec.JSON[counter]())
	sluice.Input(g, input, codec.String(), func(ctx *sluice.Context[counter], _ string) error {
		calls.Add(1)
		c, _ := ctx.Value()
		c.Count++
		ctx.SetValue(c)
		return nil
	})
	return g
}

func emitN(t *testing.T, em *sluice.Emitter[string], n int, keys int, want map[string]int64) {
	t.Helper()
	for i := range n {
		key := fmt.Sprintf("key-%d", i%keys)
		want[key]++
		em.EmitAsync(key, "x", func(err error) {
			if err != nil {
				t.Errorf("emit: %v", err)
			}
		})
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestProcessorRestoresTableAfterRestartWithoutReprocessing(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	em, err := sluice.NewEmitter("events", codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	want := make(map[string]int64)
	dir := t.TempDir()

	var calls atomic.Int64
	g := countingGroup("restart", "events", &calls)
	r := runProcessor(t, g, processorOpts(b, parts, dir)...)
	v := startView(t, "restart-table", codec.JSON[counter](), viewOpts(b, parts)...)
	emitN(t, em, 500, 20, want)
	expectCounts(t, v, want, 30*time.Second)
	r.stop(t)
	if got := calls.Load(); got != 500 {
		t.Fatalf("first run handled %d records, want 500", got)
	}

	// Same state directory: the store is current, nothing is reprocessed
	// and nothing is restored.
	calls.Store(0)
	p, err := sluice.NewProcessor(g, processorOpts(b, parts, dir)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	emitN(t, em, 300, 20, want)
	expectCounts(t, v, want, 30*time.Second)
	st := p.Stats()
	if len(st.Partitions) != parts {
		t.Fatalf("stats show %d partitions, want %d: %+v", len(st.Partitions), parts, st)
	}
	for _, ps := range st.Partitions {
		if ps.State != "running" || ps.Restored != 0 || ps.RestoreOffset != ps.RestoreEnd || ps.RestoreEnd == 0 {
			t.Errorf("partition %+v: want running, nothing restored, store at the changelog end", ps)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 300 {
		t.Fatalf("second run handled %d records, want only the 300 new ones", got)
	}

	// A fresh state directory, as on another machine: the table is restored
	// from its changelog, and counting goes on from the restored rows.
	calls.Store(0)
	p, err = sluice.NewProcessor(g, processorOpts(b, parts, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- p.Run(ctx) }()
	emitN(t, em, 200, 20, want)
	expectCounts(t, v, want, 30*time.Second)
	var restored int64
	for _, ps := range p.Stats().Partitions {
		restored += ps.Restored
	}
	if restored == 0 {
		t.Errorf("a fresh state directory restored no changelog records")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 200 {
		t.Fatalf("third run handled %d records, want only the 200 new ones", got)
	}
}

func TestSecondProcessorTakesOverHalfThePartitionsWithExactCounts(t *testing.T) {
	testHandover(t)
}

func TestSecondProcessorTakesOverHalfThePartitionsExactlyOnce(t *testing.T) {
	testHandover(t, sluice.Guarantee(sluice.ExactlyOnce))
}

func testHandover(t *testing.T, extra ...sluice.ProcessorOpt) {
	b := startBroker(t)
	const parts = 6
	em, err := sluice.NewEmitter("shared", codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	var callsA, callsB atomic.Int64
	want := make(map[string]int64)
	a := runProcessor(t, countingGroup("handover", "shared", &callsA), append(processorOpts(b, parts, t.TempDir()), extra...)...)
	v := startView(t, "handover-table", codec.JSON[counter](), viewOpts(b, parts)...)
	emitN(t, em, 1000, 60, want)
	expectCounts(t, v, want, 30*time.Second)

	// Keep emitting while the second instance joins and the partitions move.
	stopEmit := make(chan struct{})
	emitted := make(chan map[string]int64)
	go func() {
		more := make(map[string]int64)
		for i := 0; ; i++ {
			select {
			case <-stopEmit:
				if err := em.Flush(context.Background()); err != nil {
					t.Error(err)
				}
				emitted <- more
				return
			default:
			}
			key := fmt.Sprintf("key-%d", i%60)
			more[key]++
			if err := em.Emit(context.Background(), key, "x"); err != nil {
				t.Error(err)
			}
		}
	}()
	bProc := runProcessor(t, countingGroup("handover", "shared", &callsB), append(processorOpts(b, parts, t.TempDir()), extra...)...)
	waitFor(t, 30*time.Second, func() error {
		if callsB.Load() == 0 {
			return fmt.Errorf("second instance has processed nothing yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	close(stopEmit)
	for k, n := range <-emitted {
		want[k] += n
	}
	expectCounts(t, v, want, 30*time.Second)

	// Each instance now owns half the partitions: both keep processing.
	beforeA, beforeB := callsA.Load(), callsB.Load()
	emitN(t, em, 600, 60, want)
	expectCounts(t, v, want, 30*time.Second)
	gotA, gotB := callsA.Load()-beforeA, callsB.Load()-beforeB
	if gotA == 0 || gotB == 0 || (len(extra) == 0 && gotA+gotB != 600) {
		t.Fatalf("after the handover instance A handled %d and B %d of 600 new records; want a split with no duplicates", gotA, gotB)
	}
	t.Logf("after handover: A handled %d, B handled %d of 600", gotA, gotB)
	a.stop(t)
	bProc.stop(t)
}

func TestProcessorRejectsTopicsThatAreNotCopartitioned(t *testing.T) {
	b := startBroker(t)
	for topic, n := range map[string]int32{"orders": 4, "payments": 6} {
		em, err := sluice.NewEmitter(topic, codec.String(), emitterOpts(b, n)...)
		if err != nil {
			t.Fatal(err)
		}
		em.Close()
	}
	g := sluice.DefineGroup[counter]("billing")
	sluice.Persist(g, codec.JSON[counter]())
	noop := func(*sluice.Context[counter], string) error { return nil }
	sluice.Input(g, "orders", codec.String(), noop)
	sluice.Input(g, "payments", codec.String(), noop)
	p, err := sluice.NewProcessor(g, processorOpts(b, 4, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Run(ctx)
	var cerr *sluice.CopartitionError
	if !errors.As(err, &cerr) {
		t.Fatalf("run: got %v, want a CopartitionError", err)
	}
	for _, want := range []string{"billing", "orders=4", "payments=6"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestDecodeErrorStopsProcessorNamingTopicPartitionOffset(t *testing.T) {
	b := startBroker(t)
	const parts = 3
	em, err := sluice.NewEmitter("amounts", codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	ctx := context.Background()
	for _, v := range []string{"1", "2"} {
		if err := em.EmitToPartition(ctx, 1, "k", v); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.EmitToPartition(ctx, 1, "k", "three"); err != nil {
		t.Fatal(err)
	}

	g := sluice.DefineGroup[int64]("sum")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "amounts", codec.Int64(), func(ctx *sluice.Context[int64], n int64) error {
		sum, _ := ctx.Value()
		ctx.SetValue(sum + n)
		return nil
	})
	p, err := sluice.NewProcessor(g, processorOpts(b, parts, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = p.Run(rctx)
	var derr *sluice.DecodeError
	if !errors.As(err, &derr) {
		t.Fatalf("run: got %v, want a DecodeError", err)
	}
	if derr.Topic != "amounts" || derr.Partition != 1 || derr.Offset != 2 {
		t.Fatalf("decode error at %s/%d@%d, want amounts/1@2", derr.Topic, derr.Partition, derr.Offset)
	}
	if !strings.Contains(err.Error(), "amounts/1@2") {
		t.Fatalf("error message %q does not say where the record is", err)
	}
}
