package sluice_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// A record that changes a row already changed earlier in its batch, through
// the value Value returned, and then fails must leave the row as the earlier
// record left it, even when the row is a map.
func TestSkipLeavesNoEffectsOfAFailedRecordOnADirtyMapRow(t *testing.T) {
	b := startBroker(t)
	const parts = 1
	em := newEmitter(t, "maprow-in", emitterOpts(b, parts))
	// Written before the processor starts, so that the first two records
	// are fetched, and so processed, in one batch.
	emitAmounts(t, em, "k", "a", "b!", "c")

	g := sluice.DefineGroup[map[string]int]("maprow")
	sluice.Persist(g, codec.JSON[map[string]int]())
	sluice.Input(g, "maprow-in", codec.String(), func(ctx *sluice.Context[map[string]int], v string) error {
		m, _ := ctx.Value()
		if m == nil {
			m = make(map[string]int)
		}
		name, fail := strings.CutSuffix(v, "!")
		m[name]++
		if fail {
			return fmt.Errorf("record %q fails after changing the row", v)
		}
		ctx.SetValue(m)
		return nil
	})
	p, err := sluice.NewProcessor(g, append(processorOpts(b, parts, t.TempDir()), sluice.OnError(sluice.Skip))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	runUntil(t, p, func(s sluice.Stats) bool { return s.Skipped == 1 })

	v := startView(t, "maprow-table", codec.JSON[map[string]int](), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		m, err := v.Get("k")
		if err != nil {
			return err
		}
		if m["c"] != 1 {
			return fmt.Errorf("row %v: the last record is not in yet", m)
		}
		if len(m) != 2 || m["a"] != 1 {
			return fmt.Errorf("row %v, want map[a:1 c:1]: the skipped record must leave no effects", m)
		}
		return nil
	})
	r.stop(t)
}

// tagsRow is a struct row whose slice a handler can change in place.
type tagsRow struct {
	Count int
	Tags  []string
}

// The same for a struct that holds a slice: a copy of the struct shares the
// slice, so it must be decoded anew, like a map.
func TestSkipLeavesNoEffectsOfAFailedRecordOnADirtyStructWithASlice(t *testing.T) {
	b := startBroker(t)
	const parts = 1
	em := newEmitter(t, "tagrow-in", emitterOpts(b, parts))
	emitAmounts(t, em, "k", "a", "b!", "c")

	g := sluice.DefineGroup[tagsRow]("tagrow")
	sluice.Persist(g, codec.JSON[tagsRow]())
	sluice.Input(g, "tagrow-in", codec.String(), func(ctx *sluice.Context[tagsRow], v string) error {
		row, _ := ctx.Value()
		name, fail := strings.CutSuffix(v, "!")
		if fail {
			row.Tags[0] = name
			return fmt.Errorf("record %q fails after changing the row", v)
		}
		row.Count++
		row.Tags = append(row.Tags, name)
		ctx.SetValue(row)
		return nil
	})
	p, err := sluice.NewProcessor(g, append(processorOpts(b, parts, t.TempDir()), sluice.OnError(sluice.Skip))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	runUntil(t, p, func(s sluice.Stats) bool { return s.Skipped == 1 })

	v := startView(t, "tagrow-table", codec.JSON[tagsRow](), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		row, err := v.Get("k")
		if err != nil {
			return err
		}
		if row.Count != 2 {
			return fmt.Errorf("row %v: the last record is not in yet", row)
		}
		if fmt.Sprint(row.Tags) != "[a c]" {
			return fmt.Errorf("row %+v, want tags [a c]: the skipped record must leave no effects", row)
		}
		return nil
	})
	r.stop(t)
}

// nanRow is a row that codec.JSON cannot encode when X is NaN.
type nanRow struct {
	X float64
}

// A row the codec cannot encode fails the record that set it, under the
// error policy, instead of failing the batch and the processor.
func TestRowThatDoesNotEncodeFailsItsRecordUnderThePolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy sluice.Policy
	}{
		{"skip", sluice.Skip},
		{"dead-letter", sluice.DeadLetter("nanrow-dead-letter-dl")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t)
			const parts = 1
			name := "nanrow-" + tc.name
			em := newEmitter(t, name+"-in", emitterOpts(b, parts))
			// Written before the processor starts, so that they are
			// processed in one batch, which ends with the row of "bad"
			// as NaN.
			emitAmounts(t, em, "bad", "nan")
			emitAmounts(t, em, "good", "1")

			g := sluice.DefineGroup[nanRow](name)
			sluice.Persist(g, codec.JSON[nanRow]())
			sluice.Input(g, name+"-in", codec.String(), func(ctx *sluice.Context[nanRow], v string) error {
				if v == "nan" {
					ctx.SetValue(nanRow{X: math.NaN()})
					return nil
				}
				var x float64
				if _, err := fmt.Sscan(v, &x); err != nil {
					return err
				}
				ctx.SetValue(nanRow{X: x})
				return nil
			})
			p, err := sluice.NewProcessor(g, append(processorOpts(b, parts, t.TempDir()), sluice.OnError(tc.policy))...)
			if err != nil {
				t.Fatal(err)
			}
			r := runInBackground(t, p.Run)

			v := startView(t, name+"-table", codec.JSON[nanRow](), viewOpts(b, parts)...)
			expectRows := func(want map[string]float64) {
				t.Helper()
				waitFor(t, 20*time.Second, func() error {
					select {
					case <-r.done:
						return fmt.Errorf("processor stopped: %v", r.err)
					default:
					}
					for key, x := range want {
						row, err := v.Get(key)
						if err != nil || row.X != x {
							return fmt.Errorf("row %s: %v (%v), want X %v", key, row, err, x)
						}
					}
					return nil
				})
			}
			expectRows(map[string]float64{"good": 1})
			// The key whose row failed to encode takes later records.
			emitAmounts(t, em, "bad", "2")
			expectRows(map[string]float64{"good": 1, "bad": 2})
			s := p.Stats()
			if s.Skipped+s.DeadLettered != 1 {
				t.Fatalf("skipped %d, dead-lettered %d: want the record that set NaN, once", s.Skipped, s.DeadLettered)
			}
			if tc.policy == sluice.Skip {
				r.stop(t)
				return
			}
			letter := readAll(t, b.Addrs(), "nanrow-dead-letter-dl", 1)[0]
			h := map[string]string{}
			for _, kv := range letter.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if string(letter.Key) != "bad" || string(letter.Value) != "nan" || h[sluice.HeaderSourceOffset] != "0" {
				t.Errorf("dead letter %s=%s from offset %s, want bad=nan from offset 0", letter.Key, letter.Value, h[sluice.HeaderSourceOffset])
			}
			if reason := h[sluice.HeaderError]; !strings.Contains(reason, "encode") || !strings.Contains(reason, "NaN") {
				t.Errorf("dead letter reason %q: want the encoding error", reason)
			}
			r.stop(t)
		})
	}
}

// storeGets returns how many rows the group's tasks read from their stores.
func storeGets(t *testing.T, reg *prometheus.Registry, group string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		fams[f.GetName()] = f
	}
	n, _ := sumOf(fams, "sluice_store_operations_total", map[string]string{"group": group, "op": "get"})
	return n
}

// A full row cache evicts the row used least recently, so a row used by
// every other record stays cached however many other keys pass through.
func TestCacheRowsEvictsTheLeastRecentlyUsedRow(t *testing.T) {
	b := startBroker(t)
	const (
		parts = 1
		cold  = 8
	)
	reg := prometheus.NewRegistry()
	em := newEmitter(t, "lru-in", emitterOpts(b, parts))
	p, err := sluice.NewProcessor(defineCounter("lru", "lru-in"),
		append(processorOpts(b, parts, t.TempDir()), sluice.CacheRows(2), sluice.Metrics(reg))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	var sent int64
	send := func(key string) {
		emitAmounts(t, em, key, "x")
		sent++
		runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == sent })
	}
	for i := range cold {
		send("hot")
		send(fmt.Sprintf("cold-%d", i))
	}
	send("hot")
	v := startView(t, "lru-table", codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, map[string]int64{"hot": cold + 1, "cold-0": 1, "cold-7": 1}, 20*time.Second)
	// Each key was read from the store once, when it was first used.
	if gets := storeGets(t, reg, "lru"); gets != cold+1 {
		t.Fatalf("%v rows read from the store, want %d: the hot row must stay cached", gets, cold+1)
	}
	r.stop(t)
}

// Under exactly once, rows written to the changelog wait for their
// transaction before they reach the store; a cache far smaller than the
// rows a transaction changes must keep them all, or later records of the
// transaction would read stale rows from the store.
func TestCacheRowsKeepsRowsAwaitingTheirTransaction(t *testing.T) {
	b := startBroker(t)
	const (
		parts  = 1
		keys   = 20
		rounds = 3
	)
	em := newEmitter(t, "pinned-in", emitterOpts(b, parts))
	p, err := sluice.NewProcessor(defineCounter("pinned", "pinned-in"),
		append(processorOpts(b, parts, t.TempDir()), sluice.CacheRows(1), sluice.Guarantee(sluice.ExactlyOnce),
			sluice.CommitInterval(5*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	want := make(map[string]int64)
	for round := range rounds {
		for i := range keys {
			key := fmt.Sprintf("k%d", i)
			emitAmounts(t, em, key, "x")
			want[key]++
		}
		// Each round is processed before the next is written, so the
		// rounds are batches of their own, in one transaction.
		runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == int64((round+1)*keys) })
	}
	v := startView(t, "pinned-table", codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)
	r.stop(t)
}

// deliverBlocked reports whether a goroutine waits in a task's deliver: the
// poll loop, waiting until the task has room for more input.
func deliverBlocked() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		waiting := strings.Contains(header, "[select") || strings.Contains(header, "[chan send")
		if waiting && strings.Contains(g, "sluice.(*task[...]).deliver(") {
			return true
		}
	}
	return false
}

// bufferHooks counts the input bytes the processor's client handed out.
type bufferHooks struct {
	topic  string
	polled atomic.Int64
}

func (h *bufferHooks) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if polled && r.Topic == h.topic {
		h.polled.Add(int64(len(r.Key) + len(r.Value)))
	}
}

// slowInput is a processor whose handler blocks every record until release
// is closed, over records of size bytes spread over the partitions, each
// fetched alone, with its input bounded by limit.
type slowInput struct {
	p       *sluice.Processor[int64]
	r       *running
	hooks   *bufferHooks
	release chan struct{}
	// Records that reached the handler, and their bytes.
	handled, handledBytes atomic.Int64
}

const (
	slowRecordSize = 100 << 10
	slowFetchBytes = 200 << 10 // one record a fetch
)

func runSlowInput(t *testing.T, name string, parts int32, records, limit int) *slowInput {
	t.Helper()
	b := startBroker(t)
	em, err := sluice.NewEmitter(name+"-in", codec.Bytes(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := range records {
		v := make([]byte, slowRecordSize)
		_, _ = rand.Read(v)
		if err := em.EmitToPartition(context.Background(), int32(i)%parts, fmt.Sprintf("k%d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	s := &slowInput{hooks: &bufferHooks{topic: name + "-in"}, release: make(chan struct{})}
	g := sluice.DefineGroup[int64](name)
	sluice.Input(g, name+"-in", codec.Bytes(), func(ctx *sluice.Context[int64], v []byte) error {
		s.handledBytes.Add(int64(len(ctx.Key()) + len(v)))
		s.handled.Add(1)
		<-s.release
		return nil
	})
	s.p, err = sluice.NewProcessor(g, append(processorOpts(b, parts, t.TempDir()),
		sluice.MaxBufferedBytes(limit),
		sluice.KafkaOptions(kgo.WithHooks(s.hooks), kgo.FetchMaxPartitionBytes(slowFetchBytes)))...)
	if err != nil {
		t.Fatal(err)
	}
	s.r = runInBackground(t, s.p.Run)
	t.Cleanup(s.unblock)
	return s
}

func (s *slowInput) unblock() {
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

// waitBlocked waits until n records reached the handler and the poll loop
// waits for room, and returns the bytes fetched and not yet handled.
func (s *slowInput) waitBlocked(t *testing.T, n int64) int64 {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		if s.handled.Load() < n || !deliverBlocked() {
			return errors.New("the poll loop does not wait for the tasks yet")
		}
		return nil
	})
	held := s.hooks.polled.Load() - s.handledBytes.Load()
	t.Logf("%d KiB fetched and not yet handled", held>>10)
	return held
}

// finish lets the handler go and waits for every record to be consumed.
func (s *slowInput) finish(t *testing.T, records int) {
	t.Helper()
	s.unblock()
	runUntil(t, s.p, func(st sluice.Stats) bool { return st.Consumed == int64(records) })
	s.r.stop(t)
}

// A task whose handler is slow holds no more input than MaxBufferedBytes:
// the poll loop waits for it instead of fetching more.
func TestMaxBufferedBytesBoundsTheInputATaskHolds(t *testing.T) {
	const (
		records = 30
		limit   = 256 << 10
	)
	s := runSlowInput(t, "buffered", 1, records, limit)
	// Besides what the task holds, the poll loop holds the fetch it waits
	// to hand over.
	if held, most := s.waitBlocked(t, 1), int64(limit+slowFetchBytes+slowRecordSize); held > most {
		t.Fatalf("%d KiB fetched and not yet handled, want at most %d KiB", held>>10, most>>10)
	}
	s.finish(t, records)
}

// The bound holds for the processor, not for each task: tasks of four
// partitions, all slow, hold no more than MaxBufferedBytes together, so the
// input a processor holds does not grow with the partitions it owns.
func TestMaxBufferedBytesBoundsTheInputOfAllTasksTogether(t *testing.T) {
	const (
		parts   = 4
		records = 40 * parts
		limit   = 1 << 20
	)
	s := runSlowInput(t, "buffered-all", parts, records, limit)
	// Besides what the tasks hold, the poll loop holds the fetches of one
	// poll it has yet to hand over, one per partition at most.
	if held, most := s.waitBlocked(t, parts), int64(limit+parts*slowFetchBytes); held > most {
		t.Fatalf("%d KiB fetched and not yet handled by %d tasks, want at most %d KiB", held>>10, parts, most>>10)
	}
	s.finish(t, records)
}

// With room for one fetch at a time, tasks still take part in every
// transaction and stop when asked: the poll loop waits for room, never
// the task for the poll loop.
func TestMaxBufferedBytesOfOneFetchKeepsExactlyOnceGoing(t *testing.T) {
	b := startBroker(t)
	const (
		parts = 2
		n     = 300
		keys  = 10
	)
	em := newEmitter(t, "onefetch-in", emitterOpts(b, parts))
	want := make(map[string]int64)
	for i := range n {
		key := fmt.Sprintf("k%d", i%keys)
		em.EmitAsync(key, "x", nil)
		want[key]++
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := sluice.NewProcessor(defineCounter("onefetch", "onefetch-in"),
		append(processorOpts(b, parts, t.TempDir()), sluice.MaxBufferedBytes(1), sluice.Guarantee(sluice.ExactlyOnce))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	v := startView(t, "onefetch-table", codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)
	r.stop(t)
}
