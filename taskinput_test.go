package sluice

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A task that stops gives back the room of the deliveries it was handed and
// never took in, and deliveries to a stopped task take none: otherwise the
// budget its processor's other tasks share would shrink with every
// revocation until the poll loop waited forever.
func TestAStoppedTaskGivesBackTheInputBudgetOfWhatItNeverTook(t *testing.T) {
	rec := func() []*kgo.Record { return []*kgo.Record{{Key: []byte("k"), Value: []byte("123456789")}} }
	n := recordBytes(rec()[0])
	h := &taskHost[int]{input: newInputBudget(int(2 * n)), gate: newProduceGate(context.Background())}
	tk := &task[int]{h: h, in: make(chan delivery, 16), done: make(chan struct{})}

	tk.deliver(rec(), 1)
	tk.deliver(rec(), 2)
	if held := h.input.held.Load(); held != 2*n {
		t.Fatalf("two deliveries of %d bytes waiting: budget holds %d, want %d", n, held, 2*n)
	}
	d := <-tk.in
	tk.took(d)
	if held := h.input.held.Load(); held != n {
		t.Fatalf("one delivery taken in: budget holds %d, want %d", held, n)
	}

	close(tk.done)
	tk.drop()
	if held := h.input.held.Load(); held != 0 {
		t.Fatalf("the task stopped with a delivery waiting: budget holds %d, want 0", held)
	}
	tk.deliver(rec(), 3)
	if held := h.input.held.Load(); held != 0 {
		t.Fatalf("a delivery to a stopped task: budget holds %d, want 0", held)
	}

	// Other tasks of the processor get the whole budget back.
	other := &task[int]{h: h, in: make(chan delivery, 16), done: make(chan struct{})}
	other.deliver([]*kgo.Record{{Value: make([]byte, 2*n-int64(recordOverhead))}}, 1)
	if held := h.input.held.Load(); held != 2*n {
		t.Fatalf("a delivery of the whole budget to another task: budget holds %d, want %d", held, 2*n)
	}
}
