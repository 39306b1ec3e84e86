package sluice_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// heldJoinStores opens stores in dir, but holds every opening of a joined
// table's store until release is closed, after it has said so on opening
// (once): a task is then caught at the start of its join's restore.
func heldJoinStores(dir string, opening chan<- struct{}, release <-chan struct{}) store.Builder {
	var once sync.Once
	open := pebble.Builder(dir)
	return func(table string, partition int32) (store.Store, error) {
		if strings.HasSuffix(table, ".join") {
			once.Do(func() { close(opening) })
			<-release
		}
		return open(table, partition)
	}
}

// joiningCounter counts records per key, in a group that joins a table.
func joiningCounter(name, input string) *sluice.Group[counter] {
	g := defineCounter(name, input)
	sluice.Join(g, name+"-names", codec.String())
	return g
}

// A stop that comes while a task begins restoring a joined table is a
// graceful stop: whatever the restore was doing is cut short by the stop.
func TestStopWhileAJoinedTableRestoresIsAGracefulStop(t *testing.T) {
	b := startBroker(t)
	opening, release := make(chan struct{}), make(chan struct{})
	opts := append(processorOpts(b, 2, t.TempDir()), sluice.Storage(heldJoinStores(t.TempDir(), opening, release)))
	p, err := sluice.NewProcessor(joiningCounter("jstop", "jstop-in"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := startRun(t, p.Run)
	select {
	case <-opening:
	case err := <-done:
		t.Fatalf("Run returned before a task began its join: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no task began restoring its join within 30s")
	}
	cancel()
	close(release)
	if err := await(t, done, 30*time.Second, "Run did not return after the stop"); err != nil {
		t.Fatalf("Run after a stop during the join's restore: %v, want nil", err)
	}
}

// messageSignal is a log handler that closes seen when a record with the
// message msg is logged, and drops everything.
type messageSignal struct {
	msg  string
	once *sync.Once
	seen chan struct{}
}

func (h messageSignal) Enabled(context.Context, slog.Level) bool { return true }

func (h messageSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

func (h messageSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h messageSignal) WithGroup(string) slog.Handler      { return h }

// A task whose partition is revoked while it begins restoring a joined table
// stops without failing its processor, which goes on with the partitions it
// keeps.
func TestRevocationWhileAJoinedTableRestoresDoesNotFailTheProcessor(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	em := newEmitter(t, "jrev-in", emitterOpts(b, parts))
	want := map[string]int64{}
	emitN(t, em, 200, 20, want)

	opening, release := make(chan struct{}), make(chan struct{})
	released := messageSignal{msg: "partitions released", once: &sync.Once{}, seen: make(chan struct{})}
	first := runProcessor(t, joiningCounter("jrev", "jrev-in"), append(processorOpts(b, parts, t.TempDir()),
		sluice.Storage(heldJoinStores(t.TempDir(), opening, release)), sluice.Logger(slog.New(released)))...)
	select {
	case <-opening:
	case <-first.done:
		t.Fatalf("the first processor stopped before a task began its join: %v", first.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no task began restoring its join within 30s")
	}
	second := runProcessor(t, joiningCounter("jrev", "jrev-in"), processorOpts(b, parts, t.TempDir())...)
	select {
	case <-released.seen:
	case <-first.done:
		t.Fatalf("the first processor stopped before partitions were revoked: %v", first.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first processor gave up no partition within 30s of the second joining")
	}
	close(release)

	v := startView(t, "jrev-table", codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)
	emitN(t, em, 200, 20, want)
	expectCounts(t, v, want, 30*time.Second)
	select {
	case <-first.done:
		t.Fatalf("the first processor stopped: %v", first.err)
	default:
	}
	first.stop(t)
	second.stop(t)
}
