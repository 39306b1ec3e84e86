package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// gate runs the handlers of a concurrent test group and watches them: it
// counts the handlers running, per key and in all, keeps what finished per
// key in order, and holds the records the test names until it lets them go.
type gate struct {
	mu       sync.Mutex
	holds    map[string]chan struct{} // by value: closed to let the record go
	partners map[string]string        // a value lets its partner go when it starts
	active   map[string]int           // handlers running, by key
	overlaps []string                 // keys seen with two handlers running
	most     map[string]int           // the most handlers seen running, by key
	order    map[string][]string      // values finished, by key
	seen     []int64                  // offsets handled, in the order they started

	inflight, maxInflight atomic.Int64
	started, finished     chan string
}

func newGate() *gate {
	return &gate{
		holds:    make(map[string]chan struct{}),
		partners: make(map[string]string),
		active:   make(map[string]int),
		most:     make(map[string]int),
		order:    make(map[string][]string),
		started:  make(chan string, 1000),
		finished: make(chan string, 1000),
	}
}

// hold makes the record of value v wait until release(v).
func (g *gate) hold(vs ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range vs {
		g.holds[v] = make(chan struct{})
	}
}

func (g *gate) release(v string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.holds[v]; ok {
		close(ch)
		delete(g.holds, v)
	}
}

// meet makes the records of values a and b each wait until the other one
// started: both finish only if they run at the same time.
func (g *gate) meet(a, b string) {
	g.hold(a, b)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.partners[a], g.partners[b] = b, a
}

// handler emits each value to out once its record may go.
func (g *gate) handler(out *sluice.OutputTopic[string]) sluice.Handler[struct{}, string] {
	return func(ctx *sluice.Context[struct{}], v string) error {
		n := g.inflight.Add(1)
		defer g.inflight.Add(-1)
		for m := g.maxInflight.Load(); n > m && !g.maxInflight.CompareAndSwap(m, n); m = g.maxInflight.Load() {
		}
		key := ctx.Key()
		g.mu.Lock()
		if g.active[key]++; g.active[key] > 1 {
			g.overlaps = append(g.overlaps, key)
		}
		g.most[key] = max(g.most[key], g.active[key])
		g.seen = append(g.seen, ctx.Offset())
		wait := g.holds[v]
		if p, ok := g.partners[v]; ok {
			if ch, ok := g.holds[p]; ok {
				close(ch)
				delete(g.holds, p)
			}
		}
		g.mu.Unlock()
		g.started <- v
		defer func() {
			g.mu.Lock()
			g.active[key]--
			g.order[key] = append(g.order[key], v)
			g.mu.Unlock()
			g.finished <- v
		}()
		if wait != nil {
			select {
			case <-wait:
			case <-ctx.Context().Done():
				return ctx.Context().Err()
			}
		}
		switch {
		case strings.HasPrefix(v, "fail"):
			return fmt.Errorf("refused %s", v)
		case strings.HasPrefix(v, "panic"):
			panic("unlucky " + v)
		}
		return out.Emit(ctx, key, v)
	}
}

// awaitN waits for n values from ch and returns them.
func awaitN(t *testing.T, ch <-chan string, n int, what string) []string {
	t.Helper()
	var got []string
	for range n {
		got = append(got, await(t, ch, 20*time.Second, what))
	}
	return got
}

// concurrentGroup defines a group reading topic "<name>-in" with a
// concurrent input of bound n whose handlers g runs, writing "<name>-out".
func concurrentGroup(name string, g *gate, n int, opts ...sluice.ConcurrentOpt) *sluice.Group[struct{}] {
	grp := sluice.DefineGroup[struct{}](name)
	out := sluice.Output(grp, name+"-out", codec.String())
	sluice.ConcurrentInput(grp, name+"-in", codec.String(), g.handler(out), n, opts...)
	return grp
}

// produceKV writes "key=value" pairs to partition 0 of topic, in order.
func produceKV(t *testing.T, b *broker.Broker, topic string, pairs ...string) {
	t.Helper()
	em := newEmitter(t, topic, emitterOpts(b, 1))
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		if err := em.EmitToPartition(context.Background(), 0, k, v); err != nil {
			t.Fatal(err)
		}
	}
}

// committed returns the committed offset of partition 0 of topic in group,
// -1 if none is.
func committed(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok {
		return -1
	}
	return o.At
}

func awaitCommitted(t *testing.T, adm *kadm.Client, group, topic string, want int64) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		if at := committed(t, adm, group, topic); at != want {
			return fmt.Errorf("committed offset %d, want %d", at, want)
		}
		return nil
	})
}

func admin(t *testing.T, b *broker.Broker) *kadm.Client {
	return kadm.NewClient(mustClient(t, kgo.SeedBrokers(b.Addrs()...)))
}

func valuesOf(recs []*kgo.Record) []string {
	vs := make([]string, len(recs))
	for i, r := range recs {
		vs[i] = string(r.Value)
	}
	return vs
}

func TestConcurrentInputOverlapsKeysAndKeepsEachKeyInOrder(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	// a1 and b1 can only finish if they run at once.
	g.meet("a1", "b1")
	produceKV(t, b, "ccorder-in", "a=a1", "a=a2", "b=b1", "a=a3", "c=c1", "b=b2", "c=c2", "a=a4")
	runProcessor(t, concurrentGroup("ccorder", g, 4), processorOpts(b, 1, t.TempDir())...)

	awaitN(t, g.finished, 8, "every record finished")
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.overlaps) > 0 {
		t.Fatalf("records of keys %v ran at the same time", g.overlaps)
	}
	want := map[string][]string{"a": {"a1", "a2", "a3", "a4"}, "b": {"b1", "b2"}, "c": {"c1", "c2"}}
	for k, vs := range want {
		if !slices.Equal(g.order[k], vs) {
			t.Errorf("key %s finished %v, want offset order %v", k, g.order[k], vs)
		}
	}
	got := valuesOf(readAll(t, b.Addrs(), "ccorder-out", 8))
	if len(got) != 8 {
		t.Fatalf("emitted %v, want the 8 values", got)
	}
}

func TestConcurrentInputUnorderedOverlapsRecordsOfOneKey(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	g.meet("a1", "a2")
	produceKV(t, b, "ccunordered-in", "a=a1", "a=a2", "a=a3")
	runProcessor(t, concurrentGroup("ccunordered", g, 4, sluice.Unordered()), processorOpts(b, 1, t.TempDir())...)

	awaitN(t, g.finished, 3, "every record finished")
	g.mu.Lock()
	defer g.mu.Unlock()
	if !slices.Contains(g.overlaps, "a") {
		t.Fatalf("records of key a never overlapped, though a1 and a2 wait for each other")
	}
}

func TestConcurrentInputPerKeyBoundsTheHandlersOfOneKey(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	g.hold("a1", "a2", "a3", "a4")
	produceKV(t, b, "ccperkey-in", "a=a1", "a=a2", "a=a3", "a=a4", "b=b1", "b=b2", "b=b3")
	runProcessor(t, concurrentGroup("ccperkey", g, 3, sluice.PerKey(2)), processorOpts(b, 1, t.TempDir())...)

	// Key a, held, takes two of the three handlers; b's records go by in
	// the third.
	got := awaitN(t, g.finished, 3, "b's records finished while a's are held")
	slices.Sort(got)
	if !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Fatalf("finished %v while a's records are held, want [b1 b2 b3]", got)
	}
	for _, v := range []string{"a1", "a2", "a3", "a4"} {
		g.release(v)
	}
	awaitN(t, g.finished, 4, "a's records finished once let go")
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.most["a"] != 2 {
		t.Fatalf("at most %d records of key a ran at once, want PerKey's 2", g.most["a"])
	}
}

func TestConcurrentInputCommitsBelowTheLowestUnfinishedRecord(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	g.hold("a1")
	// x0 finishes, a1 holds, the records after it finish.
	produceKV(t, b, "cccommit-in", "x=x0", "a=a1", "b=b2", "c=c3", "b=b4", "d=d5")
	runProcessor(t, concurrentGroup("cccommit", g, 4), processorOpts(b, 1, t.TempDir())...)
	adm := admin(t, b)

	awaitN(t, g.finished, 5, "every record but a1 finished")
	// Their emits are written as they finish.
	if got := valuesOf(readAll(t, b.Addrs(), "cccommit-out", 5)); len(got) != 5 {
		t.Fatalf("emitted %v, want the 5 finished values", got)
	}
	awaitCommitted(t, adm, "cccommit", "cccommit-in", 1)
	// Several commit intervals (200ms) pass: the commit stays at a1.
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		if at := committed(t, adm, "cccommit", "cccommit-in"); at != 1 {
			t.Fatalf("committed offset %d while the record at offset 1 is unfinished", at)
		}
	}
	g.release("a1")
	awaitCommitted(t, adm, "cccommit", "cccommit-in", 6)
}

func TestConcurrentInputSlowKeyDoesNotBlockOtherKeysWithinMaxPending(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	g.hold("slow0")
	pairs := []string{"slow=slow0", "slow=slow1"}
	for i := range 8 {
		pairs = append(pairs, fmt.Sprintf("k%d=v%d", i, i))
	}
	produceKV(t, b, "ccslow-in", pairs...)
	// Six records held at most: slow0, slow1 behind it, and four others.
	runProcessor(t, concurrentGroup("ccslow", g, 3, sluice.MaxPending(6)), processorOpts(b, 1, t.TempDir())...)

	got := awaitN(t, g.finished, 4, "the other keys' records within MaxPending finished")
	slices.Sort(got)
	if want := []string{"v0", "v1", "v2", "v3"}; !slices.Equal(got, want) {
		t.Fatalf("finished %v while slow0 is held, want %v", got, want)
	}
	g.release("slow0")
	got = awaitN(t, g.finished, 6, "the rest finished once slow0 did")
	if got[0] != "slow0" || !slices.Contains(got, "slow1") {
		t.Fatalf("finished %v after the release, want slow0 first and slow1 among them", got)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if i, j := slices.Index(g.order["slow"], "slow0"), slices.Index(g.order["slow"], "slow1"); i != 0 || j != 1 {
		t.Fatalf("key slow finished %v, want [slow0 slow1]", g.order["slow"])
	}
}

func TestConcurrentInputRunsAtMostItsBoundAtOnce(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	var pairs, vs []string
	for i := range 12 {
		v := fmt.Sprintf("v%d", i)
		pairs = append(pairs, fmt.Sprintf("k%d=%s", i, v))
		vs = append(vs, v)
	}
	g.hold(vs...)
	produceKV(t, b, "ccbound-in", pairs...)
	runProcessor(t, concurrentGroup("ccbound", g, 3), processorOpts(b, 1, t.TempDir())...)

	// Three start; each one let go makes room for the next.
	started := awaitN(t, g.started, 3, "three records started")
	for len(started) < 12 {
		g.release(started[len(started)-3])
		started = append(started, await(t, g.started, 20*time.Second, "the next record started"))
	}
	for _, v := range started[9:] {
		g.release(v)
	}
	awaitN(t, g.finished, 12, "every record finished")
	if max := g.maxInflight.Load(); max != 3 {
		t.Fatalf("at most %d handlers ran at once, want the bound 3", max)
	}
}

func TestConcurrentInputRedoesOnlyUnfinishedRecordsAfterAStop(t *testing.T) {
	b := startBroker(t)
	dir := t.TempDir()
	g := newGate()
	g.hold("v3", "v6")
	var pairs []string
	for i := range 10 {
		pairs = append(pairs, fmt.Sprintf("k%d=v%d", i, i))
	}
	produceKV(t, b, "ccredo-in", pairs...)
	r := runProcessor(t, concurrentGroup("ccredo", g, 4), processorOpts(b, 1, dir)...)
	adm := admin(t, b)

	awaitN(t, g.finished, 8, "every record but v3 and v6 finished")
	awaitFinishedCommitted(t, adm, "ccredo", "ccredo-in", 3, []int64{4, 5, 7, 8, 9})
	// The processor stops with v3 and v6 in flight: their handlers are
	// cancelled and they stay uncommitted.
	r.stop(t)
	if at := committed(t, adm, "ccredo", "ccredo-in"); at != 3 {
		t.Fatalf("committed offset %d after the stop, want 3, the lowest unfinished record", at)
	}

	again := newGate()
	runProcessor(t, concurrentGroup("ccredo", again, 4), processorOpts(b, 1, dir)...)
	awaitN(t, again.finished, 2, "the restarted processor handled offsets 3 and 6")
	awaitCommitted(t, adm, "ccredo", "ccredo-in", 10)
	again.mu.Lock()
	seen := slices.Sorted(slices.Values(again.seen))
	again.mu.Unlock()
	if want := []int64{3, 6}; !slices.Equal(seen, want) {
		t.Fatalf("restarted processor handled offsets %v, want %v: the unfinished records alone", seen, want)
	}
	// Each record's emit once: the eight that finished, then v3 and v6.
	got := valuesOf(readAll(t, b.Addrs(), "ccredo-out", 10))
	for i := range 10 {
		if !slices.Contains(got, fmt.Sprintf("v%d", i)) {
			t.Fatalf("v%d never emitted: %v", i, got)
		}
	}
}

func TestConcurrentInputDeadLettersFailedAndPanickingRecords(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	produceKV(t, b, "ccpolicy-in", "a=ok0", "b=fail1", "a=ok2", "c=panic3", "b=ok4")
	p, err := sluice.NewProcessor(concurrentGroup("ccpolicy", g, 4),
		append(processorOpts(b, 1, t.TempDir()), sluice.OnError(sluice.DeadLetter("ccpolicy-dead")))...)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, p.Run)
	adm := admin(t, b)

	awaitCommitted(t, adm, "ccpolicy", "ccpolicy-in", 5)
	dead := readAll(t, b.Addrs(), "ccpolicy-dead", 2)
	reasons := map[string]string{}
	for _, r := range dead {
		for _, h := range r.Headers {
			if h.Key == "sluice-error" {
				reasons[string(r.Value)] = string(h.Value)
			}
		}
	}
	if !strings.Contains(reasons["fail1"], "refused fail1") || !strings.Contains(reasons["panic3"], "unlucky panic3") {
		t.Fatalf("dead letters %v, want fail1 refused and panic3 panicking", reasons)
	}
	got := valuesOf(readAll(t, b.Addrs(), "ccpolicy-out", 3))
	slices.Sort(got)
	if !slices.Equal(got, []string{"ok0", "ok2", "ok4"}) {
		t.Fatalf("emitted %v, want only the records that succeeded", got)
	}
	if s := p.Stats(); s.DeadLettered != 2 {
		t.Fatalf("dead-lettered %d, want 2", s.DeadLettered)
	}
}

func TestConcurrentInputFailStopsAtTheFailedRecord(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	g.hold("ok3")
	produceKV(t, b, "ccfail-in", "a=ok0", "b=ok1", "c=fail2", "d=ok3")
	p, err := sluice.NewProcessor(concurrentGroup("ccfail", g, 4), processorOpts(b, 1, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	done, _ := startRun(t, p.Run)
	err = await(t, done, 30*time.Second, "the processor stopped at the failed record")
	var rerr *sluice.RecordError
	if !errors.As(err, &rerr) || rerr.Offset != 2 || !strings.Contains(err.Error(), "refused fail2") {
		t.Fatalf("processor stopped with %v, want the RecordError of offset 2", err)
	}
	if at := committed(t, admin(t, b), "ccfail", "ccfail-in"); at > 2 {
		t.Fatalf("committed offset %d, past the failed record at 2", at)
	}
}

func TestConcurrentInputRefusesAGroupThatPersists(t *testing.T) {
	g := sluice.DefineGroup[int64]("ccpersist")
	sluice.Persist(g, codec.Int64())
	sluice.ConcurrentInput(g, "ccpersist-in", codec.String(), func(*sluice.Context[int64], string) error { return nil }, 4)
	err := g.Validate()
	if err == nil || !strings.Contains(err.Error(), "concurrent inputs ccpersist-in: a group with a concurrent input cannot Persist a table") {
		t.Fatalf("Validate: %v, want the concurrent input refused in a group that persists", err)
	}
}

func TestConcurrentInputRefusesAGroupWithWindows(t *testing.T) {
	g := sluice.DefineGroup[struct{}]("ccwindows")
	counts := sluice.Aggregate(g, "counts", sluice.Tumbling(time.Minute), sluice.Count[string](),
		func(*sluice.Context[struct{}], sluice.WindowResult[int64]) error { return nil })
	sluice.ConcurrentInput(g, "ccwindows-in", codec.String(), func(ctx *sluice.Context[struct{}], v string) error {
		return counts.Add(ctx, v)
	}, 4)
	err := g.Validate()
	if err == nil || !strings.Contains(err.Error(), "concurrent inputs ccwindows-in: a group with a concurrent input cannot have windowed aggregations") {
		t.Fatalf("Validate: %v, want the concurrent input refused in a group with windows", err)
	}
}

func TestConcurrentInputRefusesBoundsBelowOne(t *testing.T) {
	handle := func(*sluice.Context[struct{}], string) error { return nil }
	for _, c := range []struct {
		n    int
		opts []sluice.ConcurrentOpt
		want string
	}{
		{0, nil, "concurrent input in: the concurrency bound must be at least 1, got 0"},
		{4, []sluice.ConcurrentOpt{sluice.MaxPending(3)}, "concurrent input in: MaxPending 3 must be at least the concurrency bound 4"},
		{4, []sluice.ConcurrentOpt{sluice.MaxPending(0)}, "concurrent input in: MaxPending 0 must be at least the concurrency bound 4"},
		{4, []sluice.ConcurrentOpt{sluice.PerKey(0)}, "concurrent input in: PerKey must be at least 1, got 0"},
	} {
		g := sluice.DefineGroup[struct{}]("ccbounds")
		sluice.ConcurrentInput(g, "in", codec.String(), handle, c.n, c.opts...)
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ConcurrentInput(%d, %d options): Validate: %v, want %q", c.n, len(c.opts), err, c.want)
		}
	}
}

func TestConcurrentHandlerCannotReachTableRowsOrTimers(t *testing.T) {
	g := sluice.DefineGroup[int64]("ccrows")
	out := sluice.Output(g, "ccrows-out", codec.String())
	sluice.ConcurrentInput(g, "ccrows-in", codec.String(), func(ctx *sluice.Context[int64], v string) error {
		switch v {
		case "value":
			ctx.Value()
		case "set":
			ctx.SetValue(1)
		case "delete":
			ctx.Delete()
		case "timer":
			ctx.SetTimer("t", time.Unix(1, 0))
		}
		return out.Emit(ctx, ctx.Key(), v)
	}, 4)
	tt, err := sluicetest.New(g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("ccrows-dead"))))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"value", "set", "delete", "timer", "emit"} {
		if err := sluicetest.Send(tt, "ccrows-in", "k", v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := sluicetest.Output(tt, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value != "emit" {
		t.Fatalf("emitted %v, want only the record that left the table alone", got)
	}
	dead := tt.DeadLetters()
	if len(dead) != 4 {
		t.Fatalf("%d dead letters, want 4", len(dead))
	}
	for _, d := range dead {
		if reason, _ := d.Header("sluice-error"); !strings.Contains(reason, "a concurrent input's handler cannot reach table rows or timers") {
			t.Errorf("dead letter of %s says %q", d.Value, reason)
		}
	}
}

// readCommitted returns the values of the committed records of topic: it
// writes an end marker after them on every partition, outside any
// transaction, and reads until it has met them all (a partition's records
// may be fetched after another partition's marker).
func readCommitted(t *testing.T, addrs []string, topic string) []string {
	t.Helper()
	cl := mustClient(t, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("-end-%d-", time.Now().UnixNano())
	var markers []*kgo.Record
	ends.Each(func(o kadm.ListedOffset) {
		markers = append(markers, &kgo.Record{Topic: topic, Partition: o.Partition, Value: []byte(marker)})
	})
	if len(markers) == 0 {
		t.Fatalf("topic %s has no partitions", topic)
	}
	if err := cl.ProduceSync(ctx, markers...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for met := 0; met < len(markers); {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("end markers of %s: met %d of %d, after %v", topic, met, len(markers), got)
		}
		for _, v := range valuesOf(fs.Records()) {
			switch {
			case v == marker:
				met++
			case !strings.HasPrefix(v, "-end-"):
				got = append(got, v)
			}
		}
	}
	return got
}

func exactlyOnce(b *broker.Broker, dir string) []sluice.ProcessorOpt {
	return append(processorOpts(b, 1, dir), sluice.Guarantee(sluice.ExactlyOnce))
}

func TestConcurrentInputExactlyOnceCommitsBelowTheLowestUnfinishedRecordWithTheEmitsOfThoseFinishedAbove(t *testing.T) {
	b := startBroker(t)
	g := newGate()
	g.hold("a1")
	produceKV(t, b, "cceoscommit-in", "x=x0", "a=a1", "b=b2", "c=c3", "b=b4", "d=d5")
	runProcessor(t, concurrentGroup("cceoscommit", g, 4), exactlyOnce(b, t.TempDir())...)
	adm := admin(t, b)

	awaitN(t, g.finished, 5, "every record but a1 finished")
	// The emits of the records above a1 are committed with the metadata
	// that lists them as finished.
	awaitFinishedCommitted(t, adm, "cceoscommit", "cceoscommit-in", 1, []int64{2, 3, 4, 5})
	if got := readCommitted(t, b.Addrs(), "cceoscommit-out"); !slices.Equal(got, []string{"x0", "b2", "c3", "b4", "d5"}) {
		t.Fatalf("committed emits %v while a1 is unfinished, want [x0 b2 c3 b4 d5]", got)
	}
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		if at := committed(t, adm, "cceoscommit", "cceoscommit-in"); at != 1 {
			t.Fatalf("committed offset %d while the record at offset 1 is unfinished", at)
		}
	}
	g.release("a1")
	awaitCommitted(t, adm, "cceoscommit", "cceoscommit-in", 6)
	got := readCommitted(t, b.Addrs(), "cceoscommit-out")
	slices.Sort(got)
	if want := []string{"a1", "b2", "b4", "c3", "d5", "x0"}; !slices.Equal(got, want) {
		t.Fatalf("committed emits %v, want each record's once: %v", got, want)
	}
}

func TestConcurrentInputExactlyOnceRedoesOnlyUnfinishedRecordsAfterAStop(t *testing.T) {
	b := startBroker(t)
	dir := t.TempDir()
	g := newGate()
	g.hold("v3", "v6")
	var pairs []string
	for i := range 10 {
		pairs = append(pairs, fmt.Sprintf("k%d=v%d", i, i))
	}
	produceKV(t, b, "cceosredo-in", pairs...)
	r := runProcessor(t, concurrentGroup("cceosredo", g, 4), exactlyOnce(b, dir)...)
	adm := admin(t, b)

	awaitN(t, g.finished, 8, "every record but v3 and v6 finished")
	awaitFinishedCommitted(t, adm, "cceosredo", "cceosredo-in", 3, []int64{4, 5, 7, 8, 9})
	r.stop(t)
	if at := committed(t, adm, "cceosredo", "cceosredo-in"); at != 3 {
		t.Fatalf("committed offset %d after the stop, want 3, the lowest unfinished record", at)
	}

	again := newGate()
	runProcessor(t, concurrentGroup("cceosredo", again, 4), exactlyOnce(b, dir)...)
	awaitN(t, again.finished, 2, "the restarted processor handled offsets 3 and 6")
	awaitCommitted(t, adm, "cceosredo", "cceosredo-in", 10)
	again.mu.Lock()
	seen := slices.Sorted(slices.Values(again.seen))
	again.mu.Unlock()
	if want := []int64{3, 6}; !slices.Equal(seen, want) {
		t.Fatalf("restarted processor handled offsets %v, want %v: the unfinished records alone", seen, want)
	}
	got := readCommitted(t, b.Addrs(), "cceosredo-out")
	slices.Sort(got)
	want := []string{"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"}
	if !slices.Equal(got, want) {
		t.Fatalf("committed emits %v, want each record's exactly once: %v", got, want)
	}
}

// Records are held in flight on every partition when a second exactly-once
// processor joins: the partitions that move are redone by their new owner
// from below their unfinished records, those that stay finish where they
// are, and every record's emit is committed once.
func TestConcurrentInputExactlyOnceEmitsEachRecordOnceAcrossARebalance(t *testing.T) {
	b := startBroker(t)
	const parts, perPartition = 4, 10
	em := newEmitter(t, "cceosmove-in", emitterOpts(b, parts))
	var want, held []string
	for p := range int32(parts) {
		for i := range perPartition {
			v := fmt.Sprintf("p%d-%d", p, i)
			if err := em.EmitToPartition(context.Background(), p, fmt.Sprintf("k%d", i%3), v); err != nil {
				t.Fatal(err)
			}
			want = append(want, v)
		}
		held = append(held, fmt.Sprintf("p%d-5", p))
	}
	slices.Sort(want)
	g1 := newGate()
	g1.hold(held...)
	opts := append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce))
	first, err := sluice.NewProcessor(concurrentGroup("cceosmove", g1, 4), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r1 := runInBackground(t, first.Run)
	// Of each partition, the records of the held one's key after it wait
	// behind it (keys cycle over 3), the rest finish.
	awaitN(t, g1.finished, parts*(perPartition-2), "the records not held or behind a held one finished")

	g2 := newGate()
	opts = append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce))
	second, err := sluice.NewProcessor(concurrentGroup("cceosmove", g2, 4), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r2 := runInBackground(t, second.Run)
	running := func(p *sluice.Processor[struct{}]) int {
		n := 0
		for _, st := range p.Stats().Partitions {
			if st.State == "running" {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, func() error {
		if a, b := running(first), running(second); a != parts/2 || b != parts/2 {
			return fmt.Errorf("partitions running: first %d, second %d; want %d each", a, b, parts/2)
		}
		return nil
	})
	for _, v := range held {
		g1.release(v)
	}
	adm := admin(t, b)
	waitFor(t, 30*time.Second, func() error {
		offs, err := adm.FetchOffsets(context.Background(), "cceosmove")
		if err != nil {
			return err
		}
		for p := range int32(parts) {
			if o, ok := offs.Lookup("cceosmove-in", p); !ok || o.At != perPartition {
				return fmt.Errorf("partition %d committed at %d, want %d", p, o.At, perPartition)
			}
		}
		return nil
	})
	got := readCommitted(t, b.Addrs(), "cceosmove-out")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("committed emits: %d, want each of the %d records' once; got %v", len(got), len(want), got)
	}
	t.Logf("first processor: %+v", first.Stats())
	r2.stop(t)
	r1.stop(t)
}

func TestConcurrentInputInSluicetestExactlyOnceRedoesAnAbortedTransaction(t *testing.T) {
	var calls atomic.Int64
	g := sluice.DefineGroup[struct{}]("cctest")
	out := sluice.Output(g, "cctest-out", codec.String())
	sluice.ConcurrentInput(g, "cctest-in", codec.String(), func(ctx *sluice.Context[struct{}], v string) error {
		calls.Add(1)
		return out.Emit(ctx, ctx.Key(), v)
	}, 4)
	tt, err := sluicetest.New(g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := sluicetest.Send(tt, "cctest-in", "k-"+v, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tt.Abort(); err != nil {
		t.Fatal(err)
	}
	if got, _ := sluicetest.Output(tt, out); len(got) != 0 {
		t.Fatalf("committed %v after the abort, want nothing", got)
	}
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := sluicetest.Output(tt, out)
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, m := range got {
		vs = append(vs, m.Value)
	}
	slices.Sort(vs)
	if !slices.Equal(vs, []string{"a", "b", "c"}) || calls.Load() != 6 {
		t.Fatalf("committed %v after %d handler calls, want [a b c] once each, after 6 calls (3 aborted, 3 redone)", vs, calls.Load())
	}
}

// Exactly once, a partition whose released records wait for their
// transaction keeps taking records while the poll loop waits to hand it
// more (MaxBufferedBytes): the poll loop, which ends the transactions, is
// never left waiting for room that only the end of a transaction makes.
func TestConcurrentInputExactlyOnceTakesRecordsWhileTheReleasedWaitForTheirTransaction(t *testing.T) {
	b := startBroker(t)
	const n = 200
	var pairs, want []string
	for i := range n {
		v := fmt.Sprintf("v%03d", i)
		pairs = append(pairs, fmt.Sprintf("k%d=%s", i%7, v))
		want = append(want, v)
	}
	produceKV(t, b, "cceosroom-in", pairs...)
	g := newGate()
	opts := append(exactlyOnce(b, t.TempDir()), sluice.MaxBufferedBytes(1), sluice.CommitInterval(time.Second))
	runProcessor(t, concurrentGroup("cceosroom", g, 2, sluice.MaxPending(4)), opts...)
	awaitCommitted(t, admin(t, b), "cceosroom", "cceosroom-in", n)
	got := readCommitted(t, b.Addrs(), "cceosroom-out")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%d committed emits, want each of the %d records' once", len(got), n)
	}
}
