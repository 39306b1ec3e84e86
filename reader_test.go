package sluice

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// gatedStore holds its first Apply until release is closed, and notes any
// Apply that starts once it was handed back.
type gatedStore struct {
	store.Store
	entered, release chan struct{}
	first            atomic.Bool
	applying         atomic.Int32
	handedBack       atomic.Bool
	appliedAfter     atomic.Int32 // Apply calls after handedBack was set
}

func (s *gatedStore) Apply(changes []store.Change, offset int64) error {
	if s.handedBack.Load() {
		s.appliedAfter.Add(1)
	}
	s.applying.Add(1)
	defer s.applying.Add(-1)
	if s.first.CompareAndSwap(false, true) {
		close(s.entered)
		<-s.release
	}
	return s.Store.Apply(changes, offset)
}

// within fails the test unless fn returns within d.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// A store that is slow to apply must not hold up the reader's other work:
// the progress Stats reads and the partitions tasks add. Once remove
// returns, the reader no longer touches the store.
func TestTableReaderAnswersProgressAndAddWhileAStoreApplies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const topic = "slow-table"
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produce := func(p int32, key string) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte(key), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		produce(0, fmt.Sprintf("a%d", i))
		produce(1, fmt.Sprintf("b%d", i))
	}

	cfg := defaultClientConfig()
	cfg.brokers = b.Addrs()
	r, err := newTableReader(&cfg, cfg.logger, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	gate, ready0, runDone := runGated(t, ctx, r, 0)

	// Partition 0's Apply is in progress.
	within(t, 10*time.Second, "progress", func() {
		if _, end, _, ok := r.progress(0); !ok || end != 10 {
			t.Errorf("progress of partition 0: end %d, known %v; want 10, true", end, ok)
		}
	})
	st1 := memory.New()
	var ready1 map[int32]<-chan struct{}
	within(t, 10*time.Second, "add", func() {
		if ready1, err = r.add(ctx, map[int32]store.Store{1: st1}); err != nil {
			t.Error(err)
		}
	})

	close(gate.release)
	for p, ready := range map[int32]<-chan struct{}{0: ready0, 1: ready1[1]} {
		if err := r.waitReady(ctx, ready); err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	r.remove(0)
	if n := gate.applying.Load(); n != 0 {
		t.Fatalf("remove returned while %d Apply calls were in progress", n)
	}
	gate.handedBack.Store(true)
	// Records after the hand-over: partition 1's arrive, partition 0's
	// are not applied.
	produce(0, "a-late")
	produce(1, "b-late")
	waitForRow := time.Now().Add(30 * time.Second)
	for {
		if _, err := st1.Get([]byte("b-late")); err == nil {
			break
		}
		if time.Now().After(waitForRow) {
			t.Fatal("partition 1 did not get its late record")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := gate.appliedAfter.Load(); n != 0 {
		t.Errorf("the reader applied %d batches to partition 0's store after remove returned", n)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Errorf("run: %v", err)
	}
}

// warnSignal is a log handler that closes warned at the first warning.
type warnSignal struct {
	once   sync.Once
	warned chan struct{}
}

func (h *warnSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.once.Do(func() { close(h.warned) })
	}
	return nil
}
func (h *warnSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warnSignal) WithGroup(string) slog.Handler      { return h }

// A partition assigned while the broker restarts must wait for the broker
// rather than fail the task: restoring starts by listing the table's end
// offsets, and a refused connection then is not a reason to stop.
func TestTableReaderWaitsForABrokerThatIsRestartingToListEndOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	b, err := broker.Start(ctx, broker.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addrs()[0]
	const topic = "restarting-table"
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := defaultClientConfig()
	cfg.brokers = []string{addr}
	signal := &warnSignal{warned: make(chan struct{})}
	r, err := newTableReader(&cfg, slog.New(signal), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	st := memory.New()
	type added struct {
		ready map[int32]<-chan struct{}
		err   error
	}
	addDone := make(chan added, 1)
	go func() {
		ready, err := r.add(ctx, map[int32]store.Store{0: st})
		addDone <- added{ready, err}
	}()
	select {
	case <-signal.warned:
	case a := <-addDone:
		t.Fatalf("add returned while the broker was down: %v", a.err)
	}
	b, err = broker.Start(ctx, broker.Addr(addr), broker.DataDir(dir))
	if err != nil {
		t.Fatalf("restart the broker on %s: %v", addr, err)
	}
	defer b.Close()
	a := <-addDone
	if a.err != nil {
		t.Fatalf("add: %v", a.err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- r.run(ctx) }()
	if err := r.waitReady(ctx, a.ready[0]); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("restored row k = %q, %v; want v", v, err)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Errorf("run: %v", err)
	}
}

// failingStore fails every Apply.
type failingStore struct{ store.Store }

var errApplyRefused = errors.New("apply refused")

func (failingStore) Apply([]store.Change, int64) error { return errApplyRefused }

// readerOnTopic starts a broker with topic of the given partitions, and a
// table reader of it; produce writes a record of key and a value of size
// random bytes to partition p.
func readerOnTopic(t *testing.T, ctx context.Context, topic string, partitions int32) (r *tableReader, produce func(p int32, key string, size int)) {
	t.Helper()
	b, cl := brokerWithTopic(t, ctx, topic, partitions)
	produce = func(p int32, key string, size int) {
		t.Helper()
		// Random bytes, so that compression does not shrink what a
		// fetch carries.
		value := make([]byte, size)
		_, _ = rand.Read(value)
		rec := &kgo.Record{Topic: topic, Partition: p, Key: []byte(key), Value: value}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := defaultClientConfig()
	cfg.brokers = b.Addrs()
	r, err := newTableReader(&cfg, cfg.logger, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r, produce
}

// brokerWithTopic starts a broker with topic of the given partitions, and
// a client of it that writes to the partition a record names; both close
// with the test.
func brokerWithTopic(t *testing.T, ctx context.Context, topic string, partitions int32) (*broker.Broker, *kgo.Client) {
	t.Helper()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return b, cl
}

// runGated adds partition p to r with a store that holds its first Apply
// until gate.release is closed, runs r until ctx is done, and returns once
// that Apply is held, with the partition's ready channel and run's
// outcome.
func runGated(t *testing.T, ctx context.Context, r *tableReader, p int32) (gate *gatedStore, ready <-chan struct{}, runDone <-chan error) {
	t.Helper()
	gate = &gatedStore{Store: memory.New(), entered: make(chan struct{}), release: make(chan struct{})}
	readies, err := r.add(ctx, map[int32]store.Store{p: gate})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.run(ctx) }()
	select {
	case <-gate.entered:
	case <-ctx.Done():
		t.Fatalf("the reader never applied records of partition %d", p)
	}
	return gate, readies[p], done
}

// A partition whose store is slow to apply holds up neither the fetching
// nor the applying of the others: a partition added while another's first
// Apply waits restores, through several fetches, before that Apply ends.
func TestTableReaderRestoresOtherPartitionsWhileOneStoreWaits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, produce := readerOnTopic(t, ctx, "slow-and-large", 2)
	produce(0, "a", 10)
	gate, ready0, runDone := runGated(t, ctx, r, 0)

	// Four times a reader's fetch: partition 1 needs several.
	const size = 64 << 10
	n := 4 * readerFetchMaxBytes / size
	for i := range n {
		produce(1, fmt.Sprintf("b%d", i), size)
	}
	st1 := memory.New()
	ready1, err := r.add(ctx, map[int32]store.Store{1: st1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready1[1]:
	case <-time.After(15 * time.Second):
		t.Fatal("partition 1 did not restore while partition 0's store held its first Apply")
	}
	if _, err := st1.Get(fmt.Appendf(nil, "b%d", n-1)); err != nil {
		t.Fatalf("partition 1's last row: %v", err)
	}
	close(gate.release)
	if err := r.waitReady(ctx, ready0); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Errorf("run: %v", err)
	}
}

// A store that fails ends the reader with its error, at once, while the
// reader waits for more records.
func TestTableReaderStopsWithTheErrorOfAStoreThatFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, produce := readerOnTopic(t, ctx, "failing-table", 1)
	produce(0, "a", 10)
	readies, err := r.add(ctx, map[int32]store.Store{0: failingStore{memory.New()}})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- r.run(ctx) }()
	if err := r.waitReady(ctx, readies[0]); !errors.Is(err, errApplyRefused) {
		t.Fatalf("waitReady: %v, want %v", err, errApplyRefused)
	}
	select {
	case err := <-runDone:
		if !errors.Is(err, errApplyRefused) {
			t.Fatalf("run: %v, want %v", err, errApplyRefused)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its store failed")
	}
}

// A reader stopped while a partition's applier is behind by more than it
// holds leaves that partition idle once its Apply in progress ends: what
// was not applied is not counted as applying, and remove returns.
func TestTableReaderStoppedWhileAnApplierIsBehindLetsRemoveReturn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, produce := readerOnTopic(t, ctx, "stopped-behind", 1)
	const size = 64 << 10
	n := 4 * readerFetchMaxBytes / size
	for i := range n {
		produce(0, fmt.Sprintf("a%d", i), size)
	}
	runCtx, stop := context.WithCancel(ctx)
	gate, _, runDone := runGated(t, runCtx, r, 0)
	// The next fetches are read while the first Apply waits.
	time.Sleep(200 * time.Millisecond)
	stop()
	close(gate.release)
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return once stopped")
	}
	within(t, 10*time.Second, "remove", func() { r.remove(0) })
	if off, _, _, ok := r.progress(0); ok {
		t.Errorf("partition 0 still known after remove, at offset %d", off)
	}
}
