package sluice_test

// What a processor keeps of the records it fetched and produced: the input
// budget counts the memory records take, and the records it produced are
// let go of once acknowledged.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// fetchedHooks counts the records of topic the client hands to a poll.
type fetchedHooks struct {
	topic  string
	polled atomic.Int64
}

func (h *fetchedHooks) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if polled && r.Topic == h.topic {
		h.polled.Add(1)
	}
}

// Small records take more memory in the client's structures than in their
// keys and values: MaxBufferedBytes bounds that memory, so a slow task holds
// a few hundred of them within 64 KiB, not the thousands whose keys and
// values alone would fit.
func TestMaxBufferedBytesCountsTheMemoryOfSmallRecords(t *testing.T) {
	b := startBroker(t)
	const (
		records    = 2000
		limit      = 64 << 10
		fetchBytes = 8 << 10 // about a hundred records a fetch
	)
	em, err := sluice.NewEmitter("smallrecs-in", codec.Bytes(), emitterOpts(b, 1)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	value := []byte("12345678")
	for i := range records {
		// One at a time, so that each is a batch of its own and fetches
		// hold as many as fetchBytes allows.
		if err := em.EmitToPartition(context.Background(), 0, fmt.Sprintf("k%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	hooks := &fetchedHooks{topic: "smallrecs-in"}
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var handled atomic.Int64
	g := sluice.DefineGroup[int64]("smallrecs")
	sluice.Input(g, "smallrecs-in", codec.Bytes(), func(*sluice.Context[int64], []byte) error {
		handled.Add(1)
		<-release
		return nil
	})
	p, err := sluice.NewProcessor(g, append(processorOpts(b, 1, t.TempDir()),
		sluice.MaxBufferedBytes(limit),
		sluice.KafkaOptions(kgo.WithHooks(hooks), kgo.FetchMaxPartitionBytes(fetchBytes)))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	waitFor(t, 30*time.Second, func() error {
		if handled.Load() == 0 || !deliverBlocked() {
			return errors.New("the poll loop does not wait for the task yet")
		}
		return nil
	})
	// A record in memory: the client's Record, the pointer to it, its
	// key and value.
	perRecord := int64(unsafe.Sizeof(kgo.Record{})+unsafe.Sizeof(&kgo.Record{})) + int64(len("k0000")+len(value))
	held := hooks.polled.Load() - handled.Load()
	// Besides what the task holds, the poll loop holds the fetch it waits
	// to hand over: fetchBytes on the wire, in batches of one record, each
	// with a header of 61 bytes.
	if most := limit/perRecord + fetchBytes/61; held > most {
		t.Fatalf("%d records (%d KiB in memory) fetched and not yet handled, want at most %d", held, held*perRecord>>10, most)
	}
	unblock()
	runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == records })
	r.stop(t)
}

// producedHooks keeps a weak pointer to every record of topic the client
// buffers for producing.
type producedHooks struct {
	topic string
	mu    sync.Mutex
	recs  []weak.Pointer[kgo.Record]
}

func (h *producedHooks) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic == h.topic {
		h.mu.Lock()
		h.recs = append(h.recs, weak.Make(r))
		h.mu.Unlock()
	}
}

// live returns how many of the records buffered are still reachable, and
// how many were buffered.
func (h *producedHooks) live() (live, all int) {
	runtime.GC()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.recs {
		if w.Value() != nil {
			live++
		}
	}
	return live, len(h.recs)
}

// A record a handler emitted is let go of once Kafka acknowledged it, and
// with it the fetched input its key shares bytes with: nothing of the task
// keeps it until a later batch's records take its place.
func TestEmittedRecordsAreLetGoOfOnceAcknowledged(t *testing.T) {
	b := startBroker(t)
	const records = 200
	em := newEmitter(t, "letgo-in", emitterOpts(b, 1))
	for i := range records {
		em.EmitAsync(fmt.Sprintf("k%d", i), "x", nil)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	hooks := &producedHooks{topic: "letgo-out"}
	g := sluice.DefineGroup[int64]("letgo")
	out := sluice.Output(g, "letgo-out", codec.String())
	sluice.Input(g, "letgo-in", codec.String(), func(ctx *sluice.Context[int64], v string) error {
		return out.Emit(ctx, ctx.Key(), v)
	})
	p, err := sluice.NewProcessor(g, append(processorOpts(b, 1, t.TempDir()),
		sluice.KafkaOptions(kgo.WithHooks(hooks)))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == records && s.Produced == records })
	waitFor(t, 10*time.Second, func() error {
		if live, all := hooks.live(); live > 0 || all != records {
			return fmt.Errorf("%d of the %d records emitted are still reachable", live, all)
		}
		return nil
	})
	r.stop(t)
}

// A processor's client fetches at most a quarter of MaxBufferedBytes from
// a broker at once, and holds at most MaxBufferedBytes of records produced
// and not yet acknowledged, unless KafkaOptions say otherwise.
func TestMaxBufferedBytesBoundsWhatTheClientFetchesAndProducesAtOnce(t *testing.T) {
	for _, c := range []struct {
		name                string
		opts                []sluice.ProcessorOpt
		fetch, produceBytes any
	}{
		{name: "default", fetch: int32(8 << 20), produceBytes: int64(32 << 20)},
		{name: "budget", opts: []sluice.ProcessorOpt{sluice.MaxBufferedBytes(8 << 20)}, fetch: int32(2 << 20), produceBytes: int64(8 << 20)},
		{name: "small-budget", opts: []sluice.ProcessorOpt{sluice.MaxBufferedBytes(1)}, fetch: int32(1 << 20), produceBytes: int64(1 << 20)},
		{name: "kafka-options", opts: []sluice.ProcessorOpt{sluice.KafkaOptions(kgo.FetchMaxBytes(3<<20), kgo.MaxBufferedBytes(5<<20))}, fetch: int32(3 << 20), produceBytes: int64(5 << 20)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startBroker(t)
			hook := &newClients{}
			group := "fetchmax-" + c.name
			runProcessor(t, defineCounter(group, group+"-in"), append(processorOpts(b, 1, t.TempDir()),
				append(c.opts, sluice.KafkaOptions(kgo.WithHooks(hook)))...)...)
			var cl *kgo.Client
			waitFor(t, 30*time.Second, func() error {
				if cl = hook.ofGroup(group); cl == nil {
					return errors.New("no client of the group yet")
				}
				return nil
			})
			if got := cl.OptValue(kgo.FetchMaxBytes); got != c.fetch {
				t.Errorf("FetchMaxBytes is %v, want %v", got, c.fetch)
			}
			if got := cl.OptValue(kgo.MaxBufferedBytes); got != c.produceBytes {
				t.Errorf("MaxBufferedBytes is %v, want %v", got, c.produceBytes)
			}
		})
	}
}
