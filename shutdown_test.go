package sluice_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// With the broker gone, a graceful stop cannot write its work; the shutdown
// timeout bounds how long Run waits before giving it up.
func TestShutdownTimeoutBoundsAStopWithoutABroker(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			b := startBroker(t)
			const parts = 2
			em := newEmitter(t, "sd-in", emitterOpts(b, parts))
			emitN(t, em, 100, 5, map[string]int64{})
			// The handler slows down halfway, so that a batch with
			// unwritten rows is in hand when the broker goes away.
			halfway := make(chan struct{})
			var calls atomic.Int64
			grp := sluice.DefineGroup[int64]("sd")
			sluice.Persist(grp, codec.Int64())
			sluice.Input(grp, "sd-in", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
				n, _ := ctx.Value()
				ctx.SetValue(n + 1)
				switch c := calls.Add(1); {
				case c == 50:
					close(halfway)
				case c > 50:
					time.Sleep(20 * time.Millisecond)
				}
				return nil
			})
			opts := append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(g), sluice.ShutdownTimeout(time.Second))
			p, err := sluice.NewProcessor(grp, opts...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			select {
			case <-halfway:
			case <-time.After(20 * time.Second):
				t.Fatal("the processor did not get halfway")
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			cancel()
			select {
			case <-done:
				if took := time.Since(start); took > 15*time.Second {
					t.Fatalf("Run took %v to return after the stop", took)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return within 30s of the stop with a 1s shutdown timeout")
			}
		})
	}
}

// A stop that comes while the processor is still starting is a graceful stop
// like any other.
func TestStopDuringStartIsNotAnError(t *testing.T) {
	b := startBroker(t)
	grp := sluice.DefineGroup[int64]("early")
	sluice.Persist(grp, codec.Int64())
	sluice.Input(grp, "early-in", codec.String(), func(*sluice.Context[int64], string) error { return nil })
	p, err := sluice.NewProcessor(grp, processorOpts(b, 2, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Errorf("Run stopped before it began: %v, want nil", err)
	}
}
