package sluice

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// Run chooses the strategy of the processor's guarantee once, and the
// group's client is the strategy's: exactly once a transactional client
// that never commits by itself, at least once a client that commits the
// offsets its tasks mark every CommitInterval.
func TestRunMakesTheGroupClientOfTheGuaranteeStrategy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	defer b.Close()

	for _, guarantee := range []DeliveryGuarantee{AtLeastOnce, ExactlyOnce} {
		t.Run(guarantee.String(), func(t *testing.T) {
			name := "strategy-" + guarantee.String()
			g := DefineGroup[string](name)
			handled := make(chan struct{}, 1)
			Input(g, name+"-in", codec.String(), func(*Context[string], string) error {
				select {
				case handled <- struct{}{}:
				default:
				}
				return nil
			})
			p, err := NewProcessor(g,
				Brokers(b.Addrs()...), TopicDefaults(1, 1),
				Storage(memory.Builder()), Guarantee(guarantee), CommitInterval(300*time.Millisecond))
			if err != nil {
				t.Fatalf("new processor: %v", err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(rctx) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			em, err := NewEmitter(name+"-in", codec.String(), Brokers(b.Addrs()...), TopicDefaults(1, 1))
			if err != nil {
				t.Fatalf("new emitter: %v", err)
			}
			defer em.Close()
			if err := em.Emit(ctx, "k", "v"); err != nil {
				t.Fatalf("emit: %v", err)
			}
			// A record handled was polled with the client Run made.
			select {
			case <-handled:
			case err := <-done:
				t.Fatalf("run returned before a record was handled: %v", err)
			case <-ctx.Done():
				t.Fatal("no record was handled within a minute")
			}

			txnID, _ := p.cl.OptValue(kgo.TransactionalID).(string)
			disabled, _ := p.cl.OptValue(kgo.DisableAutoCommit).(bool)
			marks, _ := p.cl.OptValue(kgo.AutoCommitMarks).(bool)
			interval, _ := p.cl.OptValue(kgo.AutoCommitInterval).(time.Duration)
			switch guarantee {
			case ExactlyOnce:
				if _, ok := p.strategy.(*eos[string]); !ok {
					t.Fatalf("strategy is %T, want the exactly-once one", p.strategy)
				}
				if !strings.HasPrefix(txnID, name+"-") {
					t.Errorf("transactional ID %q, want one of group %s", txnID, name)
				}
				if !disabled || marks {
					t.Errorf("autocommit disabled %v, marks %v; want disabled, no marks", disabled, marks)
				}
			default:
				if _, ok := p.strategy.(*alo[string]); !ok {
					t.Fatalf("strategy is %T, want the at-least-once one", p.strategy)
				}
				if txnID != "" {
					t.Errorf("transactional ID %q, want none", txnID)
				}
				if disabled || !marks || interval != 300*time.Millisecond {
					t.Errorf("autocommit disabled %v, marks %v, interval %v; want marks every 300ms", disabled, marks, interval)
				}
			}
		})
	}
}

// Exactly once, a delivery timeout longer than the transaction timeout is
// refused, and none set is the transaction timeout; at least once, none set
// is 30s.
func TestDeliveryTimeoutOfEachGuarantee(t *testing.T) {
	p := &Processor[string]{g: DefineGroup[string]("timeouts")}
	e, a := newEOS(p), &alo[string]{p: p}
	if d, err := e.deliveryTimeout(0, 10*time.Second); err != nil || d != 10*time.Second {
		t.Errorf("exactly once, none set: %v, %v; want 10s", d, err)
	}
	if _, err := e.deliveryTimeout(11*time.Second, 10*time.Second); err == nil {
		t.Errorf("exactly once, 11s with a 10s transaction timeout: %v; want an error", err)
	}
	if d, err := a.deliveryTimeout(0, 10*time.Second); err != nil || d != 30*time.Second {
		t.Errorf("at least once, none set: %v, %v; want 30s", d, err)
	}
	if d, err := a.deliveryTimeout(time.Minute, 10*time.Second); err != nil || d != time.Minute {
		t.Errorf("at least once, 1m set: %v, %v; want 1m", d, err)
	}
}
