package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
	"github.com/sluice-io/sluice/store/pebble"
)

// loadWatch wraps the stores of a Builder and notes the bulk loads sluice
// starts, and when a chunk of one is first on disk.
type loadWatch struct {
	build   store.Builder
	loads   atomic.Int32
	once    sync.Once
	written chan struct{} // closed once a store's checkpoint came from a loader
}

func newLoadWatch(build store.Builder) *loadWatch {
	return &loadWatch{build: build, written: make(chan struct{})}
}

func (w *loadWatch) builder(table string, p int32) (store.Store, error) {
	s, err := w.build(table, p)
	if err != nil {
		return nil, err
	}
	if _, ok := s.(store.BulkLoader); !ok {
		return s, nil
	}
	return watchedStore{s, w}, nil
}

type watchedStore struct {
	store.Store
	w *loadWatch
}

func (s watchedStore) BulkLoad() (store.Loader, error) {
	l, err := s.Store.(store.BulkLoader).BulkLoad()
	if err != nil {
		return nil, err
	}
	s.w.loads.Add(1)
	return watchedLoader{l, s}, nil
}

type watchedLoader struct {
	store.Loader
	s watchedStore
}

func (l watchedLoader) Apply(changes []store.Change, offset int64) error {
	if err := l.Loader.Apply(changes, offset); err != nil {
		return err
	}
	if off, err := l.s.Offset(); err == nil && off >= 0 {
		l.s.w.once.Do(func() { close(l.s.w.written) })
	}
	return nil
}

// tableRecord is one record of a table's changelog; a nil value deletes.
type tableRecord struct {
	key, value []byte
}

// bulkTable is the changelog of the bulk restore tests: rounds over keys
// with values of about 100 bytes, the second deleting a fifth of the rows
// the first wrote and the third writing some of them again and deleting
// others, so that a restore in chunks meets a key again in a later chunk.
func bulkTable(keys int) []tableRecord {
	var recs []tableRecord
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%07d", (i*7919)%keys) }
	value := func(round, i int) []byte { return fmt.Appendf(nil, "%d-%d-%s", round, i, strings.Repeat("v", 90)) }
	for i := range keys {
		recs = append(recs, tableRecord{key(i), value(0, i)})
	}
	for i := range keys {
		if i%5 == 0 {
			recs = append(recs, tableRecord{key: key(i)})
		} else if i%2 == 0 {
			recs = append(recs, tableRecord{key(i), value(1, i)})
		}
	}
	for i := range keys {
		switch {
		case i%10 == 0:
			recs = append(recs, tableRecord{key(i), value(2, i)})
		case i%7 == 0:
			recs = append(recs, tableRecord{key: key(i)})
		}
	}
	return recs
}

// produceTable creates topic with partitions and writes recs to it, in
// order, each to the partition of its key.
func produceTable(t *testing.T, b *broker.Broker, topic string, partitions int32, recs []tableRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var (
		errMu    sync.Mutex
		firstErr error
	)
	for _, r := range recs {
		cl.Produce(ctx, &kgo.Record{Key: r.key, Value: r.value}, func(_ *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				firstErr = errors.Join(firstErr, err)
				errMu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	errMu.Lock()
	defer errMu.Unlock()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

// replay returns the rows that recs leave.
func replay(recs []tableRecord) map[string]string {
	rows := map[string]string{}
	for _, r := range recs {
		if r.value == nil {
			delete(rows, string(r.key))
		} else {
			rows[string(r.key)] = string(r.value)
		}
	}
	return rows
}

// viewRows returns every row of v.
func viewRows(t *testing.T, v *sluice.View[[]byte]) map[string]string {
	t.Helper()
	rows := map[string]string{}
	if err := v.Iterate("", "", func(k string, val []byte) bool {
		rows[k] = string(val)
		return true
	}); err != nil {
		t.Fatalf("iterate view: %v", err)
	}
	return rows
}

// storeRows returns every row of s.
func storeRows(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	it, err := s.Iter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	rows := map[string]string{}
	for it.Next() {
		rows[string(it.Key())] = string(it.Value())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// diffRows describes how got differs from want, or returns "".
func diffRows(got, want map[string]string) string {
	if maps.Equal(got, want) {
		return ""
	}
	var missing, extra, differ int
	for k, v := range want {
		if g, ok := got[k]; !ok {
			missing++
		} else if g != v {
			differ++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	return fmt.Sprintf("%d rows, want %d: %d missing, %d extra, %d with another value", len(got), len(want), missing, extra, differ)
}

// A view restoring empty Pebble stores fills them through their loaders, in
// several chunks each (a 4 MiB budget makes a chunk of 1 MiB), and ends with
// the rows a row-by-row restore into the memory store gives; it then follows
// the table through Apply, and a restart with a checkpoint does not load.
func TestViewRestoresAnEmptyPebbleStoreInChunksToTheRowsOfARowByRowRestore(t *testing.T) {
	b := startBroker(t)
	// Each partition is well past the 50,000 records below which sluice
	// restores through Apply.
	const topic, partitions = "bulk-table", 2
	produceTable(t, b, topic, partitions, bulkTable(80_000))

	dir := t.TempDir()
	watch := newLoadWatch(pebble.Builder(dir, pebble.MemoryBudget(4<<20)))
	loaded := startView(t, topic, codec.Bytes(), append(viewOpts(b, partitions), sluice.Storage(watch.builder))...)
	byRow := startView(t, topic, codec.Bytes(), append(viewOpts(b, partitions), sluice.Storage(memory.Builder()))...)
	if n := watch.loads.Load(); n != partitions {
		t.Fatalf("the view bulk loaded %d of its %d empty stores", n, partitions)
	}
	want := viewRows(t, byRow)
	if d := diffRows(viewRows(t, loaded), want); d != "" {
		t.Fatalf("bulk-loaded view: %s", d)
	}

	// Following the table after the load: a new row and a delete of a
	// loaded one.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var gone string
	for k := range want {
		gone = k
		break
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("after-load"), Value: []byte("x")}, &kgo.Record{Key: []byte(gone)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		if ok, err := loaded.Has("after-load"); err != nil || !ok {
			return fmt.Errorf("no row after-load yet (%v)", err)
		}
		if ok, err := loaded.Has(gone); err != nil || ok {
			return fmt.Errorf("row %s not deleted yet (%v)", gone, err)
		}
		return nil
	})
}

// A view whose stores hold a checkpoint restores the rest through Apply.
func TestViewRestoresAStoreWithACheckpointWithoutBulkLoading(t *testing.T) {
	b := startBroker(t)
	const topic = "bulk-table"
	recs := bulkTable(70_000)
	produceTable(t, b, topic, 1, recs[:len(recs)/2])
	dir := t.TempDir()
	first := newLoadWatch(pebble.Builder(dir))
	v, err := sluice.NewView(topic, codec.Bytes(), append(viewOpts(b, 1), sluice.Storage(first.builder))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := runInBackground(t, v.Run)
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	run.stop(t)
	if first.loads.Load() != 1 {
		t.Fatalf("the first view bulk loaded %d stores, want 1", first.loads.Load())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs[len(recs)/2:] {
		cl.Produce(ctx, &kgo.Record{Key: r.key, Value: r.value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	second := newLoadWatch(pebble.Builder(dir))
	again := startView(t, topic, codec.Bytes(), append(viewOpts(b, 1), sluice.Storage(second.builder))...)
	if n := second.loads.Load(); n != 0 {
		t.Fatalf("the view bulk loaded %d stores that had a checkpoint", n)
	}
	if d := diffRows(viewRows(t, again), replay(recs)); d != "" {
		t.Fatalf("view restored from a checkpoint: %s", d)
	}
}

// Environment of TestBulkRestoreChild.
const (
	bulkChildBrokersEnv = "SLUICE_TEST_BULK_CHILD_BROKERS"
	bulkChildDirEnv     = "SLUICE_TEST_BULK_CHILD_DIR"
	bulkChildWritten    = "chunk written"
	bulkTopic           = "bulk-crash-table"
)

// bulkBudget is the MemoryBudget of the crash test's stores: it makes
// chunks of 512 KiB, so that the restore writes many.
const bulkBudget = 2 << 20

// TestBulkRestoreChild is the child process of
// TestSIGKILLDuringABulkLoadRestoreLeavesAStoreThatFinishesTheRestore: it
// restores a view of the table into an empty state dir, says so on its
// standard output once the first chunk is on disk, and goes on until
// killed. Run otherwise, it skips.
func TestBulkRestoreChild(t *testing.T) {
	addrs := os.Getenv(bulkChildBrokersEnv)
	if addrs == "" {
		t.Skip("the child process of TestSIGKILLDuringABulkLoadRestoreLeavesAStoreThatFinishesTheRestore")
	}
	watch := newLoadWatch(pebble.Builder(os.Getenv(bulkChildDirEnv), pebble.MemoryBudget(bulkBudget)))
	v, err := sluice.NewView(bulkTopic, codec.Bytes(), sluice.Brokers(strings.Split(addrs, ",")...), sluice.Storage(watch.builder))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	select {
	case <-watch.written:
		fmt.Println(bulkChildWritten)
	case err := <-done:
		t.Fatalf("view stopped before a chunk was written: %v", err)
	}
	<-done
	t.Fatal("not killed")
}

// A SIGKILL of a process in the middle of restoring an empty store in chunks
// leaves a store that reopens at a checkpoint whose rows it holds exactly,
// and that a new view restores from there to the rows of the whole table.
func TestSIGKILLDuringABulkLoadRestoreLeavesAStoreThatFinishesTheRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	b := startBroker(t)
	// One partition, so that the records' offsets are their order here.
	recs := bulkTable(100_000)
	produceTable(t, b, bulkTopic, 1, recs)
	dir := t.TempDir()

	child := startChild(t, "TestBulkRestoreChild", bulkChildWritten,
		bulkChildBrokersEnv+"="+strings.Join(b.Addrs(), ","), bulkChildDirEnv+"="+dir)
	err := child.await(2 * time.Minute)
	child.kill() // SIGKILL, while the restore goes on
	if err != nil {
		t.Fatal(err)
	}

	s, err := pebble.Builder(dir, pebble.MemoryBudget(bulkBudget))(bulkTopic+".view", 0)
	if err != nil {
		t.Fatalf("reopen the killed process's store: %v", err)
	}
	c, err := s.Offset()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed at checkpoint %d of %d records", c, len(recs))
	if c < 0 || c > int64(len(recs)) {
		t.Fatalf("checkpoint after the kill is %d, want one of a chunk in [0, %d]", c, len(recs))
	}
	if d := diffRows(storeRows(t, s), replay(recs[:c])); d != "" {
		t.Fatalf("store at checkpoint %d: %s", c, d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	v := startView(t, bulkTopic, codec.Bytes(), append(viewOpts(b, 1), sluice.Storage(pebble.Builder(dir, pebble.MemoryBudget(bulkBudget))))...)
	if d := diffRows(viewRows(t, v), replay(recs)); d != "" {
		t.Fatalf("view restored after the kill: %s", d)
	}
}
