package sluice

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// gateClient is a client of a fresh broker with topic, one partition.
func gateClient(t *testing.T, topic string) *kgo.Client {
	t.Helper()
	b := pipelineBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return cl
}

// acks collects the outcome of produced records, in the order the client
// reports them.
type acks chan *kgo.Record

func (a acks) promise(t *testing.T) func(*kgo.Record, error) {
	return func(r *kgo.Record, err error) {
		if err != nil {
			t.Errorf("produce %s: %v", r.Value, err)
		}
		a <- r
	}
}

func (a acks) wait(t *testing.T, n int) []*kgo.Record {
	t.Helper()
	var got []*kgo.Record
	for len(got) < n {
		select {
		case r := <-a:
			got = append(got, r)
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d records acknowledged", len(got), n)
		}
	}
	return got
}

// The records the tasks of one poll produce stay with the processor while
// any delivery of it is being processed, and reach the client together,
// in the order they were produced, once the last one is taken back: ten
// tasks producing at their own moments made as many produce requests.
func TestRecordsProducedWhileDeliveriesAreProcessedLeaveOnceTheLastIsTakenBack(t *testing.T) {
	cl := gateClient(t, "gated")
	g := newProduceGate(context.Background())
	g.delay = time.Hour // no task here is slow
	a := make(acks, 10)
	g.handing()
	g.handing()
	for _, v := range []string{"a", "b", "c"} {
		g.produce(cl, &kgo.Record{Topic: "gated", Value: []byte(v)}, a.promise(t))
	}
	g.taken(1)
	if n := cl.BufferedProduceRecords(); n != 0 {
		t.Fatalf("the client holds %d records while a delivery is being processed", n)
	}
	g.taken(1)
	got := a.wait(t, 3)
	for i, r := range got {
		if want := string("abc"[i]); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: %s at offset %d, want %s at %d", i, r.Value, r.Offset, want, i)
		}
	}
	// Nothing being processed: a record leaves at once.
	g.produce(cl, &kgo.Record{Topic: "gated", Value: []byte("d")}, a.promise(t))
	if r := a.wait(t, 1)[0]; string(r.Value) != "d" || r.Offset != 3 {
		t.Fatalf("got %s at offset %d, want d at 3", r.Value, r.Offset)
	}
}

// A record does not wait for a task that takes long with its delivery (a
// slow handler) beyond the gate's delay.
func TestARecordLeavesAfterTheGateDelayWhileADeliveryIsStillProcessed(t *testing.T) {
	cl := gateClient(t, "gated")
	g := newProduceGate(context.Background())
	a := make(acks, 10)
	g.handing() // never taken back
	g.produce(cl, &kgo.Record{Topic: "gated", Value: []byte("a")}, a.promise(t))
	a.wait(t, 1)
	// And again, once the timer has fired.
	g.produce(cl, &kgo.Record{Topic: "gated", Value: []byte("b")}, a.promise(t))
	if r := a.wait(t, 1)[0]; string(r.Value) != "b" {
		t.Fatalf("got %s, want b", r.Value)
	}
}

// A task that waits for its records to be acknowledged hands on what
// waits in the gate first, whatever the other deliveries: it would
// otherwise wait for them.
func TestAWaitForAcknowledgementsSendsTheRecordsTheGateHolds(t *testing.T) {
	cl := gateClient(t, "gated")
	h := &taskHost[int]{gate: newProduceGate(context.Background()), writeCtx: context.Background()}
	h.gate.delay = time.Hour
	tk := &task[int]{h: h, cl: cl}
	tk.initWrites()
	h.gate.handing() // another task's delivery, never taken back
	tk.produce(&kgo.Record{Topic: "gated", Value: []byte("a")})
	w := tk.filling
	w.left.Add(-1) // sealed
	if err := tk.awaitWrite(w, 0, time.After(30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// The gate holds no more than gateRecords records while deliveries are
// being processed: reading a backlog, some task always is, and its records
// leave once they fill a request rather than after the gate's delay.
func TestTheGateHandsOnWhatItHoldsOnceItHoldsGateRecords(t *testing.T) {
	cl := gateClient(t, "gated")
	g := newProduceGate(context.Background())
	g.delay = time.Hour
	a := make(acks, gateRecords)
	g.handing() // never taken back
	for i := range gateRecords {
		g.produce(cl, &kgo.Record{Topic: "gated", Value: []byte{byte(i)}}, a.promise(t))
	}
	a.wait(t, gateRecords)
}
