package export

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
)

func TestFlushSendsTheEventsPendingWhenItStartsAndStops(t *testing.T) {
	b := startTestBroker(t)
	cl := newInputClient(t, b)
	u := genUpdates(rand.New(rand.NewPCG(61, 62)), time.Now().Add(-time.Hour).Truncate(time.Second), time.Second, 4)
	produceBuckets(t, cl, u)
	state := t.TempDir()

	// A run whose sink is down leaves every event pending.
	down := &gateSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, e2eConfig(b, down, state)) }()
	v, err := sluice.NewView("export-table", PendingCodec(), sluice.Brokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	vctx, stopView := context.WithCancel(context.Background())
	defer stopView()
	go func() { _ = v.Run(vctx) }()
	waitFor(t, 60*time.Second, "every event pending in the table", func() bool {
		n := 0
		_ = v.Iterate("", "", func(_ string, p Pending) bool { n += len(p.Buckets); return true })
		return n == len(u.latest)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	up := &gateSink{open: true}
	var (
		mu       sync.Mutex
		progress [][2]int
	)
	err = Flush(context.Background(), e2eConfig(b, up, state), func(done, total int) {
		mu.Lock()
		progress = append(progress, [2]int{done, total})
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	w := &watchSent{latest: u.latest}
	for _, line := range up.taken() {
		w.line([]byte(line))
		got[line] = true
	}
	if wrong := w.errors(); len(wrong) > 0 {
		t.Fatalf("%d lines not the latest value of their bucket, first %s", len(wrong), wrong[0])
	}
	if len(got) != len(u.latest) {
		t.Fatalf("flush sent %d distinct events, want the %d pending", len(got), len(u.latest))
	}
	first, last := progress[0], progress[len(progress)-1]
	if first != [2]int{0, len(u.latest)} || last != [2]int{len(u.latest), len(u.latest)} {
		t.Fatalf("progress went from %v to %v, want 0 to %d of %d", first, last, len(u.latest), len(u.latest))
	}
}

func TestFlushOfAnExportThatNeverRanReturnsAtOnce(t *testing.T) {
	b := startTestBroker(t)
	if err := Flush(context.Background(), e2eConfig(b, &gateSink{open: true}, t.TempDir()), nil); err != nil {
		t.Fatal(err)
	}
}
