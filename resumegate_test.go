package sluice_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// staggeredRestore is a processor of parts partitions whose table is empty
// in partition 0 and holds rows in the others, whose stores open only once
// release is closed: partition 0 restores first, and the others after
// the test says so. Each input partition holds one record.
type staggeredRestore struct {
	proc    *sluice.Processor[[]byte]
	release chan struct{}

	mu      sync.Mutex
	handled map[int32]bool
	first   chan struct{} // closed once a record is handled
	all     chan struct{} // closed once every partition's record is
	zero    chan struct{} // closed once partition 0's record is
}

func startStaggeredRestore(t *testing.T, parts int32, opts ...sluice.ProcessorOpt) *staggeredRestore {
	t.Helper()
	const rows = 5000 // per partition but the first
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g := sluice.DefineGroup[[]byte]("resumegate")
	sluice.Persist(g, codec.Bytes())
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, parts, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, g.TableTopic()); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, parts, -1, nil, "resumegate-in"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p := int32(1); p < parts; p++ {
		for i := range rows {
			recs = append(recs, &kgo.Record{Topic: g.TableTopic(), Partition: p, Key: fmt.Appendf(nil, "row-%d-%d", p, i), Value: []byte("value")})
		}
	}
	for p := range parts {
		recs = append(recs, &kgo.Record{Topic: "resumegate-in", Partition: p, Key: fmt.Appendf(nil, "in-%d", p), Value: []byte("x")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	s := &staggeredRestore{
		release: make(chan struct{}),
		handled: make(map[int32]bool),
		first:   make(chan struct{}),
		all:     make(chan struct{}),
		zero:    make(chan struct{}),
	}
	sluice.Input(g, "resumegate-in", codec.Bytes(), func(c *sluice.Context[[]byte], _ []byte) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.handled) == 0 {
			close(s.first)
		}
		if c.Partition() == 0 && !s.handled[0] {
			close(s.zero)
		}
		s.handled[c.Partition()] = true
		if len(s.handled) == int(parts) {
			close(s.all)
		}
		return nil
	})
	build := pebble.Builder(t.TempDir())
	storage := func(table string, p int32) (store.Store, error) {
		if p != 0 {
			select {
			case <-s.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return build(table, p)
	}
	opts = append(append(processorOpts(b, parts, t.TempDir()), sluice.Storage(storage)), opts...)
	if s.proc, err = sluice.NewProcessor(g, opts...); err != nil {
		t.Fatal(err)
	}
	runInBackground(t, s.proc.Run)
	return s
}

// awaitRestored waits until partition 0 has restored.
func (s *staggeredRestore) awaitRestored(t *testing.T) {
	t.Helper()
	waitFor(t, time.Minute, func() error {
		for _, st := range s.proc.Stats().Partitions {
			if st.Partition == 0 && st.State == "running" {
				return nil
			}
		}
		return fmt.Errorf("partition 0 has not restored")
	})
}

func (s *staggeredRestore) unhandled(parts int32) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []int32
	for p := range parts {
		if !s.handled[p] {
			missing = append(missing, p)
		}
	}
	return missing
}

// TestTasksRestoringTogetherGetTheirRecordsWithoutAwaitingAnotherTasksFetch
// has the other partitions restore just after partition 0: a fetch of
// partition 0 alone, which has nothing more to read, would wait the
// client's FetchMaxWait at the broker and hold their records back as long.
// Every partition's record must be handled well within that wait of the
// first.
func TestTasksRestoringTogetherGetTheirRecordsWithoutAwaitingAnotherTasksFetch(t *testing.T) {
	const (
		parts   = 4
		maxWait = 30 * time.Second
	)
	s := startStaggeredRestore(t, parts, sluice.KafkaOptions(kgo.FetchMaxWait(maxWait)))
	s.awaitRestored(t)
	close(s.release)
	await(t, s.first, time.Minute, "the first record handled")
	select {
	case <-s.all:
	case <-time.After(maxWait / 3):
		t.Fatalf("records of partitions %v not handled within %v of the first record (FetchMaxWait %v)", s.unhandled(parts), maxWait/3, maxWait)
	}
}

// TestATaskRestoredEarlyIsNotHeldBackByARestoreThatGoesOn has partition 0
// restored while the others cannot even open their stores: its record is
// handled all the same, and theirs once they restore.
func TestATaskRestoredEarlyIsNotHeldBackByARestoreThatGoesOn(t *testing.T) {
	const parts = 3
	s := startStaggeredRestore(t, parts)
	await(t, s.zero, time.Minute, "partition 0's record handled while the others restore")
	if missing := s.unhandled(parts); len(missing) != parts-1 {
		t.Fatalf("partitions %v unhandled before their stores opened, want 1 and 2", missing)
	}
	close(s.release)
	await(t, s.all, time.Minute, "every partition's record handled")
}
