package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
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
			done, cancel := startRun(t, p.Run)
			await(t, halfway, 20*time.Second, "the processor did not get halfway")
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			cancel()
			await(t, done, 30*time.Second, "Run did not return after the stop with a 1s shutdown timeout")
			if took := time.Since(start); took > 15*time.Second {
				t.Fatalf("Run took %v to return after the stop", took)
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

// Kafka retries writes, but not for ever: a processor whose writes cannot
// reach the broker stops, within the delivery timeout and the shutdown
// timeout, with an error that names the write.
func TestProcessorStopsWhenItsWritesCannotReachKafka(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			b := startBroker(t)
			const parts = 2
			em := newEmitter(t, "gone-in", emitterOpts(b, parts))
			emitN(t, em, 400, 20, map[string]int64{})
			// The handler slows down halfway, so that the processor is
			// still writing when the broker goes away.
			halfway := make(chan struct{})
			var calls atomic.Int64
			grp := sluice.DefineGroup[int64]("gone")
			sluice.Persist(grp, codec.Int64())
			out := sluice.Output(grp, "gone-out", codec.Int64())
			sluice.Input(grp, "gone-in", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
				n, _ := ctx.Value()
				ctx.SetValue(n + 1)
				switch c := calls.Add(1); {
				case c == 50:
					close(halfway)
				case c > 50:
					time.Sleep(10 * time.Millisecond)
				}
				return out.Emit(ctx, ctx.Key(), n+1)
			})
			opts := append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(g),
				sluice.DeliveryTimeout(2*time.Second), sluice.ShutdownTimeout(2*time.Second))
			p, err := sluice.NewProcessor(grp, opts...)
			if err != nil {
				t.Fatal(err)
			}
			done, _ := startRun(t, p.Run)
			await(t, halfway, 20*time.Second, "the processor did not get halfway")
			// Every task is past its restore, so that only writes can
			// fail.
			waitFor(t, 10*time.Second, func() error {
				s := p.Stats()
				for _, ps := range s.Partitions {
					if ps.State != "running" {
						return fmt.Errorf("partition %d is %s", ps.Partition, ps.State)
					}
				}
				if len(s.Partitions) != parts {
					return fmt.Errorf("%d partitions owned, want %d", len(s.Partitions), parts)
				}
				return nil
			})
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			err = await(t, done, 60*time.Second, "Run did not return after the broker went away")
			if err == nil || !containsAll(err.Error(), "group gone", "partition", "gone-", "produce") {
				t.Fatalf("Run: %v, want an error naming the group and the writes that failed", err)
			}
			t.Logf("Run: %v", err)
		})
	}
}

// A write that Kafka refuses for good, here to an output topic deleted while
// the processor writes to it, stops the processor with an error naming the
// topic.
func TestProcessorStopsWhenAnOutputTopicIsDeleted(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "deleted-in", emitterOpts(b, parts))
	emitN(t, em, 400, 20, map[string]int64{})
	halfway := make(chan struct{})
	var calls atomic.Int64
	grp := sluice.DefineGroup[int64]("deleted")
	out := sluice.Output(grp, "deleted-out", codec.String())
	sluice.Input(grp, "deleted-in", codec.String(), func(ctx *sluice.Context[int64], v string) error {
		switch c := calls.Add(1); {
		case c == 50:
			close(halfway)
		case c > 50:
			time.Sleep(10 * time.Millisecond)
		}
		return out.Emit(ctx, ctx.Key(), v)
	})
	opts := append(processorOpts(b, parts, t.TempDir()), sluice.DeliveryTimeout(2*time.Second), sluice.ShutdownTimeout(2*time.Second))
	p, err := sluice.NewProcessor(grp, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done, _ := startRun(t, p.Run)
	await(t, halfway, 20*time.Second, "the processor did not get halfway")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).DeleteTopic(context.Background(), "deleted-out"); err != nil {
		t.Fatal(err)
	}
	err = await(t, done, 60*time.Second, "Run did not return after the output topic's deletion")
	if err == nil || !containsAll(err.Error(), "group deleted", "partition", "deleted-out") {
		t.Fatalf("Run: %v, want an error naming the group and the output topic", err)
	}
	t.Logf("Run: %v", err)
}

// After a failure, the stop waits for the other tasks no longer than the
// shutdown timeout, even for a handler that does not return.
func TestStopAfterAFailureIsBoundedByTheShutdownTimeout(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "stuck-in", emitterOpts(b, parts))
	stuck, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	grp := sluice.DefineGroup[int64]("stuck")
	sluice.Persist(grp, codec.Int64())
	sluice.Input(grp, "stuck-in", codec.String(), func(ctx *sluice.Context[int64], v string) error {
		if ctx.Partition() == 1 {
			once.Do(func() { close(stuck) })
			<-release
		}
		if v == "boom" {
			return errors.New("boom")
		}
		return nil
	})
	opts := append(processorOpts(b, parts, t.TempDir()), sluice.ShutdownTimeout(time.Second))
	p, err := sluice.NewProcessor(grp, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) })
	done, _ := startRun(t, p.Run)
	ctx := context.Background()
	if err := em.EmitToPartition(ctx, 1, "k", "x"); err != nil {
		t.Fatal(err)
	}
	await(t, stuck, 20*time.Second, "the handler of partition 1 was not called")
	if err := em.EmitToPartition(ctx, 0, "k", "boom"); err != nil {
		t.Fatal(err)
	}
	err = await(t, done, 30*time.Second, "Run did not return after the failure with a 1s shutdown timeout")
	if err == nil || !containsAll(err.Error(), "boom", "stuck-in/0") {
		t.Fatalf("Run: %v, want the failure at stuck-in/0", err)
	}
}

// Exactly once, a record still being retried when its transaction times out
// cannot commit: a delivery timeout longer than the transaction timeout is
// refused, and one within it accepted.
func TestExactlyOnceDeliveryTimeoutMustFitTheTransactionTimeout(t *testing.T) {
	b := startBroker(t)
	base := append(processorOpts(b, 2, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce))
	p, err := sluice.NewProcessor(defineCounter("fit", "fit-in"), append(base, sluice.DeliveryTimeout(20*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !containsAll(err.Error(), "group fit", "DeliveryTimeout 20s", "transaction timeout 10s") {
		t.Fatalf("Run: %v, want the delivery timeout refused", err)
	}
	longer := sluice.KafkaOptions(kgo.TransactionTimeout(30 * time.Second))
	p, err = sluice.NewProcessor(defineCounter("fit", "fit-in"), append(base, sluice.DeliveryTimeout(20*time.Second), longer)...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	waitFor(t, 20*time.Second, func() error {
		if len(p.Stats().Partitions) == 0 {
			return fmt.Errorf("no partition assigned yet")
		}
		return nil
	})
	r.stop(t)
}

// A stop that gives up writes Kafka took and never answered, at the shutdown
// timeout, is no graceful stop: Run returns, at once and every time, the
// error that names what was given up.
func TestAStopThatAbandonsWritesReturnsTheirError(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.SeedTopics(2, "ab-in"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close() // wakes the produce requests held below
			release := make(chan struct{})
			defer close(release)
			var hold atomic.Bool
			held := make(chan struct{}, 1)
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				if hold.Load() {
					select {
					case held <- struct{}{}:
					default:
					}
					c.SleepControl(func() { <-release })
				}
				return nil, nil, false
			})
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				r := &kgo.Record{Topic: "ab-in", Key: fmt.Appendf(nil, "k%d", i%5), Value: []byte("x")}
				if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			cl.Close()
			var calls atomic.Int64
			grp := sluice.DefineGroup[int64]("ab")
			sluice.Persist(grp, codec.Int64())
			sluice.Input(grp, "ab-in", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
				n, _ := ctx.Value()
				ctx.SetValue(n + 1)
				if calls.Add(1) == 10 {
					hold.Store(true) // from now on Kafka takes writes and never answers
				}
				return nil
			})
			p, err := sluice.NewProcessor(grp, sluice.Brokers(c.ListenAddrs()...), sluice.Logger(testLogger()),
				sluice.TopicDefaults(2, 1), sluice.Storage(pebble.Builder(t.TempDir())),
				sluice.Guarantee(g), sluice.CommitInterval(200*time.Millisecond), sluice.ShutdownTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			done, cancel := startRun(t, p.Run)
			await(t, held, 20*time.Second, "the processor wrote nothing")
			start := time.Now()
			cancel()
			err = await(t, done, 20*time.Second, "Run did not return after the stop with a 1s shutdown timeout")
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Run took %v to return after the stop", took)
			}
			if err == nil || !strings.Contains(err.Error(), "abandoned by the stop") {
				t.Fatalf("Run returned %v, want the error of the writes it abandoned", err)
			}
		})
	}
}
