package sluice_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
	"github.com/sluice-io/sluice/store/pebble"
)

// scanCountingStore counts the iterators asked of the store it wraps, and
// passes on its row count.
type scanCountingStore struct {
	store.Store
	iters *atomic.Int64
}

func (s scanCountingStore) Iter(lo, hi []byte) (store.Iterator, error) {
	s.iters.Add(1)
	return s.Store.Iter(lo, hi)
}

func (s scanCountingStore) Rows() (int64, bool) {
	if c, ok := s.Store.(store.RowCounter); ok {
		return c.Rows()
	}
	return 0, false
}

func scanCounting(b store.Builder, iters *atomic.Int64) store.Builder {
	return func(table string, p int32) (store.Store, error) {
		st, err := b(table, p)
		if err != nil {
			return nil, err
		}
		return scanCountingStore{st, iters}, nil
	}
}

// tableRows sums the table rows of a processor's partitions, once all of
// them run and report a count.
func tableRows(p *sluice.Processor[string], partitions int) (int64, error) {
	s := p.Stats()
	if len(s.Partitions) != partitions {
		return 0, fmt.Errorf("%d partitions of %d", len(s.Partitions), partitions)
	}
	var sum int64
	for _, ps := range s.Partitions {
		if ps.State != "running" || ps.TableRows < 0 {
			return 0, fmt.Errorf("partition %d: %s, table rows %d", ps.Partition, ps.State, ps.TableRows)
		}
		sum += ps.TableRows
	}
	return sum, nil
}

// Row counts come from the stores, kept as rows change: no task open and no
// Stats call reads the rows to count them, and the counts stay right
// through writes, deletes and restores from the changelog.
func TestRowCountsStayRightWithoutScanningStores(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	g := sluice.DefineGroup[string]("rowcount")
	sluice.Persist(g, codec.String())
	sluice.Input(g, "rowcount-in", codec.String(), func(ctx *sluice.Context[string], v string) error {
		if v == "del" {
			ctx.Delete()
		} else {
			ctx.SetValue(v)
		}
		return nil
	})
	var iters atomic.Int64
	run := func(dir string) (*sluice.Processor[string], *running) {
		opts := append(processorOpts(b, parts, dir),
			sluice.Metrics(prometheus.NewRegistry()),
			sluice.Storage(scanCounting(pebble.Builder(dir, pebble.CountRows()), &iters)))
		p, err := sluice.NewProcessor(g, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return p, runInBackground(t, p.Run)
	}
	expect := func(p *sluice.Processor[string], want int64) {
		t.Helper()
		waitFor(t, 30*time.Second, func() error {
			n, err := tableRows(p, parts)
			if err == nil && n != want {
				err = fmt.Errorf("table rows %d, want %d", n, want)
			}
			return err
		})
	}

	em := newEmitter(t, "rowcount-in", emitterOpts(b, parts))
	dir := t.TempDir()
	p, r := run(dir)
	for i := range 10 {
		emitAll(t, em, fmt.Sprintf("k%d", i), "v1")
	}
	expect(p, 10)
	// Updates add no rows; deletes, of rows and of keys without one,
	// remove only the rows.
	emitAll(t, em, "k0", "v2", "k1", "v2", "k5", "del", "k6", "del", "k6", "del", "none", "del", "k7", "del", "k7", "back")
	expect(p, 8)
	r.stop(t)

	// Restarted on its state directory: nothing to restore.
	p, r = run(dir)
	expect(p, 8)
	emitAll(t, em, "k8", "del", "k10", "v1")
	expect(p, 8)
	r.stop(t)

	// On an empty state directory: restored from the changelog.
	p, r = run(t.TempDir())
	expect(p, 8)
	r.stop(t)

	v := startView(t, g.TableTopic(), codec.String(), append(viewOpts(b, parts), sluice.Storage(scanCounting(memory.Builder(), &iters)))...)
	waitFor(t, 30*time.Second, func() error {
		if s := v.Stats(); s.Rows != 8 {
			return fmt.Errorf("view rows %d, want 8", s.Rows)
		}
		return nil
	})
	if n := iters.Load(); n != 0 {
		t.Errorf("stores were iterated %d times to count their rows", n)
	}
}
