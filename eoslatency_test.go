package sluice_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// TestCommitIntervalFloorIsTenMillisecondsExactlyOnceAndTheClientsAtLeastOnce
// checks the shortest CommitInterval each guarantee accepts: exactly once,
// where the processor ends its transactions itself, 10ms; at least once,
// where the Kafka client autocommits, its shortest interval, 100ms.
func TestCommitIntervalFloorIsTenMillisecondsExactlyOnceAndTheClientsAtLeastOnce(t *testing.T) {
	for _, c := range []struct {
		guarantee sluice.DeliveryGuarantee
		interval  time.Duration
		refused   string // what the error says, if refused
	}{
		{sluice.ExactlyOnce, 10 * time.Millisecond, ""},
		{sluice.ExactlyOnce, 20 * time.Millisecond, ""},
		{sluice.ExactlyOnce, 9 * time.Millisecond, "at least 10ms exactly once"},
		{sluice.AtLeastOnce, 100 * time.Millisecond, ""},
		{sluice.AtLeastOnce, 50 * time.Millisecond, "at least 100ms at least once"},
	} {
		t.Run(fmt.Sprintf("%v/%v", c.guarantee, c.interval), func(t *testing.T) {
			_, err := sluice.NewProcessor(echoCounter("interval", "interval-in"),
				sluice.Storage(pebble.Builder(t.TempDir())), sluice.Guarantee(c.guarantee), sluice.CommitInterval(c.interval))
			switch {
			case c.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.refused != "" && err == nil:
				t.Fatal("accepted")
			case c.refused != "" && !strings.Contains(err.Error(), c.refused):
				t.Fatalf("error %q does not say %q", err, c.refused)
			}
		})
	}
}

// TestExactlyOnceWithTenMillisecondTransactionsCountsAndEmitsEachRecordOnce
// runs an exactly-once processor that commits every 10ms over records
// written in five rounds, and checks that its table holds every key's count
// and that a reader of committed records sees each output once.
func TestExactlyOnceWithTenMillisecondTransactionsCountsAndEmitsEachRecordOnce(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	em := newEmitter(t, "eos10-in", emitterOpts(b, parts))
	want := map[string]int64{}
	p, err := sluice.NewProcessor(echoCounter("eos10", "eos10-in"),
		append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce), sluice.CommitInterval(10*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	v := startView(t, "eos10-table", codec.Int64(), viewOpts(b, parts)...)
	for range 5 {
		emitN(t, em, 240, 12, want)
		waitFor(t, 30*time.Second, func() error {
			for k, n := range want {
				if got, err := v.Get(k); err != nil || got != n {
					return fmt.Errorf("count of %s: %d (%v), want %d", k, got, err, n)
				}
			}
			return nil
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	outs := readTopic(t, b.Addrs(), "eos10-out", true)
	seen := map[string]bool{}
	for _, o := range outs {
		if seen[o] {
			t.Fatalf("output %q committed twice", o)
		}
		seen[o] = true
	}
	if len(outs) != 1200 {
		t.Fatalf("%d committed outputs, want 1200", len(outs))
	}
	t.Logf("stats: %d transactions committed, %d aborted", p.Stats().Commits, p.Stats().Aborts)
}

// heldApplies opens stores in dir and holds, once, the Apply to partition
// 0's table store of changes that hold key, until release is closed, after
// saying so on applying.
func heldApplies(dir, key string, applying chan<- struct{}, release <-chan struct{}) store.Builder {
	open := pebble.Builder(dir)
	var once sync.Once
	return func(table string, partition int32) (store.Store, error) {
		st, err := open(table, partition)
		if err != nil || partition != 0 || strings.HasSuffix(table, ".join") {
			return st, err
		}
		return &heldStore{Store: st, key: key, once: &once, applying: applying, release: release}, nil
	}
}

type heldStore struct {
	store.Store
	key      string
	once     *sync.Once
	applying chan<- struct{}
	release  <-chan struct{}
}

func (s *heldStore) Apply(changes []store.Change, offset int64) error {
	for _, c := range changes {
		if strings.HasSuffix(string(c.Key), s.key) {
			s.once.Do(func() {
				close(s.applying)
				<-s.release
			})
			break
		}
	}
	return s.Store.Apply(changes, offset)
}

// TestExactlyOnceHandsOutRecordsWhileATaskAppliesACommittedTransaction holds
// one task's store write of a committed transaction and checks that the
// processor meanwhile hands the records of another partition to their task,
// which processes them, and that the counts are exact once the write goes
// ahead: the poll loop does not wait for the stores after a commit.
func TestExactlyOnceHandsOutRecordsWhileATaskAppliesACommittedTransaction(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	keyOf := func(prefix string, partition int32) string {
		for i := 0; ; i++ {
			k := fmt.Sprintf("%s-%d", prefix, i)
			if sluice.Murmur2.Partition(k, parts) == partition {
				return k
			}
		}
	}
	held, other := keyOf("held", 0), keyOf("other", 1)
	handled := make(chan string, 16)
	g := sluice.DefineGroup[int64]("eosheld")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "eosheld-in", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		handled <- ctx.Key()
		return nil
	})
	applying, release := make(chan struct{}), make(chan struct{})
	p, err := sluice.NewProcessor(g, append(processorOpts(b, parts, t.TempDir()),
		sluice.Storage(heldApplies(t.TempDir(), held, applying, release)),
		sluice.Guarantee(sluice.ExactlyOnce))...)
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := startRun(t, p.Run)
	defer func() {
		cancel()
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	em := newEmitter(t, "eosheld-in", emitterOpts(b, parts))
	emit := func(key string) {
		t.Helper()
		if err := em.Emit(context.Background(), key, "x"); err != nil {
			t.Fatal(err)
		}
	}
	// Both tasks run, then the held one's store write waits.
	emit(keyOf("warm", 1))
	emit(held)
	for range 2 {
		await(t, handled, 30*time.Second, "the first records were not handled")
	}
	await(t, applying, 30*time.Second, "the transaction of the first records did not reach the store")
	emit(other)
	if k := await(t, handled, 15*time.Second, "no record was handled while a task wrote a committed transaction to its store"); k != other {
		t.Fatalf("handled %s, want %s", k, other)
	}
	close(release)
	v := startView(t, "eosheld-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 30*time.Second, func() error {
		for _, k := range []string{held, other} {
			if got, err := v.Get(k); err != nil || got != 1 {
				return fmt.Errorf("count of %s: %d (%v), want 1", k, got, err)
			}
		}
		return nil
	})
	cancel()
	if err := await(t, done, 30*time.Second, "Run did not return after the stop"); err != nil {
		t.Fatalf("run: %v", err)
	}
}
