package sluice_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// slowHeartbeat is a client hook that, once armed, holds the first
// heartbeat after a transaction's offset commit for hold: the client's
// commit waits for that heartbeat before it ends the transaction, as it does
// while the member joins the group again, so the end of the transaction is
// held as long. The hook runs where the client writes the request, before
// it reads the answer.
type slowHeartbeat struct {
	hold           time.Duration
	armed, offsets atomic.Bool
	held           atomic.Int32
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (h *slowHeartbeat) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil || !h.armed.Load() {
		return
	}
	switch key {
	case kmsg.TxnOffsetCommit.Int16():
		h.offsets.Store(true)
	case kmsg.Heartbeat.Int16():
		if h.offsets.Load() && h.armed.CompareAndSwap(true, false) {
			time.Sleep(h.hold)
			h.held.Add(1)
		}
	}
}

// An exactly-once processor whose transaction cannot end within the
// transaction timeout (here the heartbeat that the client's commit waits
// for comes late, as when the member joins the group again) must not let it
// reach the broker's timeout: the broker would abort it, and the commit that
// follows would leave the producer unusable. The processor aborts the
// transaction itself first, processes its records again, and goes on;
// counts stay exact.
func TestExactlyOnceProcessorOutlastsATransactionTheBrokerAborted(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	const timeout = 2 * time.Second
	em := newEmitter(t, "outlast-in", emitterOpts(b, parts))
	want := map[string]int64{}
	emitN(t, em, 40, 8, want)

	hook := &slowHeartbeat{hold: timeout + timeout/2}
	opts := append(processorOpts(b, parts, t.TempDir()),
		sluice.Guarantee(sluice.ExactlyOnce),
		sluice.KafkaOptions(kgo.TransactionTimeout(timeout), kgo.WithHooks(hook)))
	p, err := sluice.NewProcessor(defineCounter("outlast", "outlast-in"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	done, stop := startRun(t, p.Run)
	v := startView(t, "outlast-table", codec.JSON[counter](), viewOpts(b, parts)...)
	counted := func() error {
		select {
		case err := <-done:
			t.Fatalf("processor stopped: %v", err)
		default:
		}
		for k, n := range want {
			c, err := v.Get(k)
			if err != nil || c.Count != n {
				return fmt.Errorf("count of %s: %d (%v), want %d", k, c.Count, err, n)
			}
		}
		return nil
	}
	waitFor(t, 30*time.Second, counted)

	hook.armed.Store(true)
	emitN(t, em, 40, 8, want)
	waitFor(t, 30*time.Second, func() error {
		if hook.held.Load() == 0 {
			return fmt.Errorf("no heartbeat held yet")
		}
		return counted()
	})
	// The processor still commits what comes next.
	emitN(t, em, 40, 8, want)
	waitFor(t, 30*time.Second, counted)
	stop()
	if err := await(t, done, 30*time.Second, "processor stopped"); err != nil {
		t.Fatalf("run: %v", err)
	}
	if s := p.Stats(); s.Aborts == 0 || s.Redone == 0 {
		t.Fatalf("stats %+v: want the held transaction aborted and its records redone", s)
	}
}

// A handler that takes longer than the transaction timeout, while another
// task's writes opened the transaction at the broker, outlives the
// transaction: the broker aborts it and refuses the task's writes, which
// the client cannot recover from. The processor stops with an error that
// names the cause and the option to change.
func TestExactlyOnceHandlerThatOutlastsTheTransactionTimeoutFailsNamingIt(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	const timeout = 2 * time.Second
	em := newEmitter(t, "slowhandler-in", emitterOpts(b, parts))
	ctx := context.Background()
	// Both records go into the first transaction: "x" writes its row at
	// once, which opens the transaction at the broker, while "slow"
	// holds its task past the timeout, and then writes its row.
	if err := em.EmitToPartition(ctx, 0, "a", "x"); err != nil {
		t.Fatal(err)
	}
	if err := em.EmitToPartition(ctx, 1, "s", "slow"); err != nil {
		t.Fatal(err)
	}
	g := sluice.DefineGroup[int64]("slowhandler")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "slowhandler-in", codec.String(), func(ctx *sluice.Context[int64], v string) error {
		if v == "slow" {
			time.Sleep(timeout + timeout/2)
		}
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		return nil
	})
	opts := append(processorOpts(b, parts, t.TempDir()),
		sluice.Guarantee(sluice.ExactlyOnce),
		sluice.KafkaOptions(kgo.TransactionTimeout(timeout)))
	p, err := sluice.NewProcessor(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done, _ := startRun(t, p.Run)
	err = await(t, done, 30*time.Second, "processor stopped")
	if err == nil || !containsAll(err.Error(), "transaction timeout", "kgo.TransactionTimeout") {
		t.Fatalf("run: %v, want an error that names the transaction timeout and its option", err)
	}
}
