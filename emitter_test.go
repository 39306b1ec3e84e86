package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
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
	"github.com/sluice-io/sluice/internal/kafka"
)

// topicProbe inspects topics of a broker with plain franz-go clients,
// independently of the sluice code under test.
type topicProbe struct {
	t   *testing.T
	b   *broker.Broker
	adm *kadm.Client
}

func newTopicProbe(t *testing.T, b *broker.Broker) *topicProbe {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &topicProbe{t: t, b: b, adm: kadm.NewClient(cl)}
}

// create creates topic with n partitions, compacted if asked.
func (tp *topicProbe) create(topic string, n int32, compacted bool) {
	tp.t.Helper()
	var configs map[string]*string
	if compacted {
		compact := "compact"
		configs = map[string]*string{"cleanup.policy": &compact}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tp.adm.CreateTopic(ctx, n, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tp.t.Fatalf("create topic %s: %v", topic, err)
	}
}

// partitions returns how many partitions the broker says topic has.
func (tp *topicProbe) partitions(topic string) int {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	details, err := tp.adm.ListTopics(ctx, topic)
	if err != nil {
		tp.t.Fatalf("describe %s: %v", topic, err)
	}
	d, ok := details[topic]
	if !ok || d.Err != nil {
		tp.t.Fatalf("describe %s: %+v", topic, d)
	}
	return len(d.Partitions)
}

// visible returns how many records of topic the broker has acknowledged:
// the sum of its partitions' end offsets.
func (tp *topicProbe) visible(topic string) int64 {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := tp.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		tp.t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			tp.t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		n += o.Offset
	})
	return n
}

// readAll consumes topic from the start up to the end offsets it has now,
// and returns its records, in offset order within each partition.
func (tp *topicProbe) readAll(topic string) []*kgo.Record {
	tp.t.Helper()
	total := tp.visible(topic)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(tp.b.Addrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var records []*kgo.Record
	for int64(len(records)) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tp.t.Fatalf("read %s: got %d of %d records: %v", topic, len(records), total, ctx.Err())
		}
		fetches.EachError(func(_ string, p int32, err error) {
			tp.t.Fatalf("read %s/%d: %v", topic, p, err)
		})
		records = append(records, fetches.Records()...)
	}
	return records
}

// asyncOutcomes collects the outcomes EmitAsync reports.
type asyncOutcomes struct {
	mu   sync.Mutex
	errs []error
}

func (d *asyncOutcomes) done(err error) {
	d.mu.Lock()
	d.errs = append(d.errs, err)
	d.mu.Unlock()
}

// outcomes returns how many callbacks ran and the first error among them.
func (d *asyncOutcomes) outcomes() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, err := range d.errs {
		if err != nil {
			return len(d.errs), err
		}
	}
	return len(d.errs), nil
}

func newStringEmitter(t *testing.T, b *broker.Broker, topic string, partitions int32, extra ...sluice.EmitterOpt) *sluice.Emitter[string] {
	t.Helper()
	em, err := sluice.NewEmitter(topic, codec.String(), emitterOpts(b, partitions, extra...)...)
	if err != nil {
		t.Fatalf("new emitter %s: %v", topic, err)
	}
	t.Cleanup(func() { _ = em.Close() })
	return em
}

func TestEmitReturnsOnceRecordIsReadableOnItsKeysPartition(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	em := newStringEmitter(t, b, "acked", parts)
	probe := newTopicProbe(t, b)
	ctx := context.Background()
	want := make(map[string]string)
	for i := range 20 {
		key, val := fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i)
		if err := em.Emit(ctx, key, val); err != nil {
			t.Fatalf("emit %s: %v", key, err)
		}
		want[key] = val
		// Acknowledged means the broker has it: no waiting.
		if got := probe.visible("acked"); got != int64(i+1) {
			t.Fatalf("after %d acknowledged emits the topic holds %d records", i+1, got)
		}
	}
	records := probe.readAll("acked")
	if len(records) != len(want) {
		t.Fatalf("read %d records, want %d", len(records), len(want))
	}
	for _, r := range records {
		key := string(r.Key)
		if string(r.Value) != want[key] {
			t.Errorf("key %s: value %q, want %q", key, r.Value, want[key])
		}
		if p := kafka.KeyPartition(r.Key, parts); r.Partition != p {
			t.Errorf("key %s on partition %d, want murmur2's %d", key, r.Partition, p)
		}
	}
}

func TestEmitToPartitionWritesThatPartitionAndRejectsOutOfRange(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	em := newStringEmitter(t, b, "pinned", parts)
	ctx := context.Background()
	for i := range 10 {
		if err := em.EmitToPartition(ctx, 2, fmt.Sprintf("key-%d", i), "x"); err != nil {
			t.Fatalf("emit to partition 2: %v", err)
		}
	}
	for _, p := range []int32{-1, parts, 100} {
		err := em.EmitToPartition(ctx, p, "key", "x")
		if err == nil {
			t.Fatalf("emit to partition %d of %d: no error", p, parts)
		}
		for _, want := range []string{fmt.Sprintf("partition %d", p), "[0, 4)", "pinned"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q for partition %d does not name %q", err, p, want)
			}
		}
	}
	records := newTopicProbe(t, b).readAll("pinned")
	if len(records) != 10 {
		t.Fatalf("read %d records, want the 10 in range", len(records))
	}
	for _, r := range records {
		if r.Partition != 2 {
			t.Errorf("record %s on partition %d, want 2", r.Key, r.Partition)
		}
	}
}

// TestDeprecatedDeliveryThresholdHandsRecordsOverAtOnce keeps programs that
// set DeliveryThreshold working: the client batches, so records below the
// threshold are delivered without a Flush.
func TestDeprecatedDeliveryThresholdHandsRecordsOverAtOnce(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "held", 3, sluice.DeliveryThreshold(100))
	probe := newTopicProbe(t, b)
	var rec asyncOutcomes
	for i := range 99 {
		em.EmitAsync(fmt.Sprintf("key-%d", i), "x", rec.done)
	}
	waitFor(t, 10*time.Second, func() error {
		n, err := rec.outcomes()
		if err != nil {
			return fmt.Errorf("delivery failed: %w", err)
		}
		if n != 99 {
			return fmt.Errorf("%d of 99 callbacks ran", n)
		}
		return nil
	})
	if got := probe.visible("held"); got != 99 {
		t.Fatalf("%d of 99 acknowledged records visible", got)
	}
}

// TestEmitAsyncDeliversHeldRecordsAfterDeliveryInterval lets the client
// linger: records emitted without Flush are delivered when the interval ends,
// in a second round too, for which the client lingers again. The interval
// bounds how long records wait, it is not a minimum: a produce request the
// client is still draining takes every buffered batch along, so records
// emitted while the last round's answer is on its way may leave at once.
func TestEmitAsyncDeliversHeldRecordsAfterDeliveryInterval(t *testing.T) {
	b := startBroker(t)
	const interval = 200 * time.Millisecond
	em := newStringEmitter(t, b, "timed", 3, sluice.DeliveryInterval(interval))
	probe := newTopicProbe(t, b)
	var rec asyncOutcomes
	for round := 1; round <= 2; round++ {
		start := time.Now()
		for i := range 5 {
			em.EmitAsync(fmt.Sprintf("key-%d", i), "x", rec.done)
		}
		want := 5 * round
		waitFor(t, 10*time.Second, func() error {
			n, err := rec.outcomes()
			if err != nil {
				return fmt.Errorf("delivery failed: %w", err)
			}
			if n != want {
				return fmt.Errorf("round %d: %d of %d callbacks ran", round, n, want)
			}
			return nil
		})
		t.Logf("round %d: delivered after %v", round, time.Since(start).Round(time.Millisecond))
		if got := probe.visible("timed"); got != int64(want) {
			t.Fatalf("round %d: %d of %d acknowledged records visible", round, got, want)
		}
	}
}

// TestFlushDeliversHeldRecords lets the client linger a minute: Flush must
// end the linger and return once every record and callback is done.
func TestFlushDeliversHeldRecords(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "flushed", 3, sluice.DeliveryInterval(time.Minute))
	probe := newTopicProbe(t, b)
	var rec asyncOutcomes
	for i := range 10 {
		em.EmitAsync(fmt.Sprintf("key-%d", i), "x", rec.done)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if got := probe.visible("flushed"); got != 10 {
		t.Fatalf("%d of 10 records visible after Flush returned", got)
	}
	if n, err := rec.outcomes(); n != 10 || err != nil {
		t.Fatalf("after Flush %d of 10 callbacks ran, first error %v", n, err)
	}
}

// emitterStressChild is set in the environment of the child process that
// TestFlushConcurrentWithEmitAsyncDoesNotPanic runs.
const emitterStressChild = "SLUICE_TEST_EMITTER_STRESS_CHILD"

// TestFlushConcurrentWithEmitAsyncDoesNotPanic flushes while other
// goroutines emit, as an application that flushes periodically does. It runs
// the work in a child process: a panic on a goroutine of the emitter cannot be
// recovered and would take every other test of the package down with it.
func TestFlushConcurrentWithEmitAsyncDoesNotPanic(t *testing.T) {
	if os.Getenv(emitterStressChild) != "" {
		flushWhileEmitting(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFlushConcurrentWithEmitAsyncDoesNotPanic$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), emitterStressChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("flushing while emitting from other goroutines failed (%v):\n%s", err, out)
	}
}

func flushWhileEmitting(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "stressed", 3)
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		emitted atomic.Int64
		flushes atomic.Int64
	)
	// Emitters that wait for each acknowledgement keep the number of
	// records in flight going to zero and back, as a lightly loaded
	// application does.
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				acked := make(chan error, 1)
				em.EmitAsync(fmt.Sprintf("key-%d-%d", g, i), "x", func(err error) { acked <- err })
				if err := <-acked; err != nil {
					t.Errorf("emit: %v", err)
					return
				}
				emitted.Add(1)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := em.Flush(ctx)
				cancel()
				if err != nil {
					t.Errorf("flush: %v", err)
					return
				}
				flushes.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if err := em.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := newTopicProbe(t, b).visible("stressed"); got != emitted.Load() {
		t.Fatalf("%d records acknowledged, %d in the topic", emitted.Load(), got)
	}
	t.Logf("%d records emitted during %d flushes", emitted.Load(), flushes.Load())
}

// TestFlushDoesNotWaitForRecordsEmittedAfterIt emits a record from the
// callback of a record that Flush is waiting for, and holds the new record's
// callback until Flush returned: the new record comes after the Flush call,
// so Flush, which waits for the records emitted before it, must not wait for
// it.
func TestFlushDoesNotWaitForRecordsEmittedAfterIt(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "chained", 3)
	release := make(chan struct{})
	later := make(chan error, 1)
	em.EmitAsync("first", "x", func(err error) {
		if err != nil {
			t.Errorf("first: %v", err)
		}
		em.EmitAsync("second", "x", func(err error) {
			<-release
			later <- err
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatalf("flush of the first record, with the second's callback held: %v", err)
	}
	close(release)
	// The second record is waited for by the next Flush.
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-later:
		if err != nil {
			t.Fatalf("second: %v", err)
		}
	default:
		t.Fatal("Flush returned before the callback of a record emitted before it ran")
	}
}

// TestCloseDeliversHeldRecords is TestFlushDeliversHeldRecords for Close.
func TestCloseDeliversHeldRecords(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "closed", 3, sluice.DeliveryInterval(time.Minute))
	probe := newTopicProbe(t, b)
	var rec asyncOutcomes
	for i := range 10 {
		em.EmitAsync(fmt.Sprintf("key-%d", i), "x", rec.done)
	}
	if err := em.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := probe.visible("closed"); got != 10 {
		t.Fatalf("%d of 10 records visible after Close returned", got)
	}
	if n, err := rec.outcomes(); n != 10 || err != nil {
		t.Fatalf("after Close %d of 10 callbacks ran, first error %v", n, err)
	}
}

func TestEmitAfterCloseReportsErrClosed(t *testing.T) {
	b := startBroker(t)
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			topic := fmt.Sprintf("after-close-%v", held)
			var opts []sluice.EmitterOpt
			if held {
				opts = append(opts, sluice.DeliveryThreshold(100), sluice.DeliveryInterval(time.Second))
			}
			em := newStringEmitter(t, b, topic, 3, opts...)
			if err := em.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			got := make(chan error, 1)
			em.EmitAsync("key", "x", func(err error) { got <- err })
			select {
			case err := <-got:
				if !errors.Is(err, sluice.ErrClosed) {
					t.Errorf("EmitAsync after Close reported %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("EmitAsync after Close never called its callback")
			}
			ctx := context.Background()
			if err := em.Emit(ctx, "key", "x"); !errors.Is(err, sluice.ErrClosed) {
				t.Errorf("Emit after Close: %v, want ErrClosed", err)
			}
			if err := em.EmitToPartition(ctx, 0, "key", "x"); !errors.Is(err, sluice.ErrClosed) {
				t.Errorf("EmitToPartition after Close: %v, want ErrClosed", err)
			}
			if err := em.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if n := newTopicProbe(t, b).visible(topic); n != 0 {
				t.Errorf("%d records written after Close", n)
			}
		})
	}
}

func TestEmitWritesHeaders(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "with-headers", 1)
	headers := []sluice.Header{
		{Key: "trace-id", Value: []byte("abc123")},
		{Key: "source", Value: []byte("checkout")},
		{Key: "trace-id", Value: []byte("repeated keys are kept")},
		{Key: "empty", Value: []byte{}},
	}
	ctx := context.Background()
	if err := em.Emit(ctx, "sync", "x", headers...); err != nil {
		t.Fatal(err)
	}
	if err := em.EmitToPartition(ctx, 0, "pinned", "x", headers...); err != nil {
		t.Fatal(err)
	}
	var rec asyncOutcomes
	em.EmitAsync("async", "x", rec.done, headers...)
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.outcomes(); err != nil {
		t.Fatal(err)
	}
	records := newTopicProbe(t, b).readAll("with-headers")
	if len(records) != 3 {
		t.Fatalf("read %d records, want 3", len(records))
	}
	for _, r := range records {
		got := make([]sluice.Header, len(r.Headers))
		for i, h := range r.Headers {
			got[i] = sluice.Header{Key: h.Key, Value: h.Value}
		}
		if !slices.EqualFunc(got, headers, func(a, b sluice.Header) bool {
			return a.Key == b.Key && string(a.Value) == string(b.Value)
		}) {
			t.Errorf("record %s has headers %q, want %q", r.Key, got, headers)
		}
	}
}

func TestEmitterCreatesMissingTopicWithTopicDefaults(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "created", 7)
	if em.Partitions() != 7 {
		t.Fatalf("emitter reports %d partitions, want TopicDefaults' 7", em.Partitions())
	}
	if n := newTopicProbe(t, b).partitions("created"); n != 7 {
		t.Fatalf("broker has topic created with %d partitions, want 7", n)
	}
	// An existing topic keeps its partitions, whatever the defaults say.
	other := newStringEmitter(t, b, "created", 3)
	if other.Partitions() != 7 {
		t.Fatalf("emitter of an existing 7-partition topic reports %d partitions", other.Partitions())
	}
}

// TestEmitAsyncFromACallbackWhileTheClientsBufferIsFullDoesNotDeadlock fills
// the client's buffer (one record) so that handing a record over blocks, and
// emits from the callback of the record that has to complete to make room.
func TestEmitAsyncFromACallbackWhileTheClientsBufferIsFullDoesNotDeadlock(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "full", 3, sluice.KafkaOptions(kgo.MaxBufferedRecords(1)), sluice.DeliveryThreshold(2))
	chained := make(chan error, 1)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		em.EmitAsync("first", "x", func(err error) {
			if err != nil {
				t.Errorf("first: %v", err)
			}
			em.EmitAsync("chained", "x", func(err error) { chained <- err })
		})
		em.EmitAsync("second", "x", nil)
	}()
	select {
	case err := <-chained:
		if err != nil {
			t.Fatalf("chained: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the record emitted from a callback was not acknowledged within 20s: the emitter deadlocked")
	}
	<-emitted
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if got := newTopicProbe(t, b).visible("full"); got != 3 {
		t.Fatalf("%d of 3 records visible after Flush", got)
	}
}

// TestFlushReturnsWhileCallbacksKeepEmitting emits, from each record's
// callback, the next record, so that some record is always buffered: Flush
// waits for the records emitted before it, and must return although the
// client never runs out of records.
func TestFlushReturnsWhileCallbacksKeepEmitting(t *testing.T) {
	b := startBroker(t)
	em := newStringEmitter(t, b, "chain", 3)
	var stop atomic.Bool
	var links atomic.Int64
	stopped := make(chan struct{})
	var next func(err error)
	next = func(err error) {
		if err != nil {
			t.Errorf("link %d: %v", links.Load(), err)
		}
		if stop.Load() {
			close(stopped)
			return
		}
		em.EmitAsync(fmt.Sprint("link-", links.Add(1)), "x", next)
	}
	em.EmitAsync("link-0", "x", next)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatalf("flush while callbacks emit: %v (%d links)", err, links.Load())
	}
	stop.Store(true)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the chain did not stop")
	}
}

// TestCloseReturnsWithinCloseTimeoutWhenTheBrokerIsGone closes an emitter
// whose records cannot be delivered: Close gives up after its bound, and the
// records that were not delivered report ErrClosed.
func TestCloseReturnsWithinCloseTimeoutWhenTheBrokerIsGone(t *testing.T) {
	b := startBroker(t)
	em, err := sluice.NewEmitter("orphaned", codec.String(), emitterOpts(b, 3, sluice.CloseTimeout(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Emit(context.Background(), "before", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	const n = 5
	outcomes := make(chan error, n)
	for i := range n {
		em.EmitAsync(fmt.Sprint("after-", i), "x", func(err error) { outcomes <- err })
	}
	closed := make(chan error, 1)
	go func() { closed <- em.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("Close reported no error with 5 records undelivered")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close with a CloseTimeout of 1s did not return within 20s of a broker going away")
	}
	if err := em.Emit(context.Background(), "closed", "x"); !errors.Is(err, sluice.ErrClosed) {
		t.Errorf("Emit after Close: %v, want ErrClosed", err)
	}
	for range n {
		select {
		case err := <-outcomes:
			if !errors.Is(err, sluice.ErrClosed) {
				t.Errorf("undelivered record reported %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an undelivered record's callback did not run after Close")
		}
	}
}

// TestNewEmitterRejectsCloseTimeoutThatIsNotPositive: a Close that may not
// wait gives up on every record emitted before it, so a zero CloseTimeout
// is refused with the negative ones, before the emitter connects.
func TestNewEmitterRejectsCloseTimeoutThatIsNotPositive(t *testing.T) {
	b := startBroker(t)
	for _, d := range []time.Duration{0, -time.Second} {
		em, err := sluice.NewEmitter("close-timeout", codec.String(), emitterOpts(b, 1, sluice.CloseTimeout(d))...)
		if err == nil {
			_ = em.Close()
		}
		wantOptionError(t, fmt.Sprintf("NewEmitter with CloseTimeout(%v)", d), err, "CloseTimeout")
	}
	em, err := sluice.NewEmitter("close-timeout", codec.String(), emitterOpts(b, 1, sluice.CloseTimeout(time.Millisecond))...)
	if err != nil {
		t.Fatalf("NewEmitter with CloseTimeout(1ms): %v", err)
	}
	if err := em.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// unencodable is a codec that cannot encode "bad".
type unencodable struct{}

func (unencodable) Encode(s string) ([]byte, error) {
	if s == "bad" {
		return nil, errors.New("cannot encode bad")
	}
	return []byte(s), nil
}
func (unencodable) Decode(b []byte) (string, error) { return string(b), nil }

// TestEmitAsyncCallbacksOfRecordsNeverSentRunOnTheEmittersGoroutine: the
// callback of a record that cannot be encoded, or is emitted after Close,
// runs on the emitter's goroutine as every other callback does, never on
// the caller's: a caller that holds a lock its callback takes does not
// deadlock.
func TestEmitAsyncCallbacksOfRecordsNeverSentRunOnTheEmittersGoroutine(t *testing.T) {
	b := startBroker(t)
	em, err := sluice.NewEmitter("never-sent", codec.Codec[string](unencodable{}), emitterOpts(b, 1)...)
	if err != nil {
		t.Fatal(err)
	}
	emitHoldingALock := func(value string) error {
		var mu sync.Mutex
		got := make(chan error, 1)
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			mu.Lock()
			defer mu.Unlock()
			em.EmitAsync("k", value, func(err error) {
				mu.Lock()
				defer mu.Unlock()
				got <- err
			})
		}()
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Fatalf("EmitAsync of %q ran its callback on the caller's goroutine: it deadlocked on the caller's lock", value)
		}
		select {
		case err := <-got:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("EmitAsync of %q never called its callback", value)
			return nil
		}
	}
	if err := emitHoldingALock("bad"); err == nil || !strings.Contains(err.Error(), "cannot encode bad") {
		t.Errorf("callback of an unencodable record: %v, want the encode error", err)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if err := emitHoldingALock("good"); !errors.Is(err, sluice.ErrClosed) {
		t.Errorf("callback of a record emitted after Close: %v, want ErrClosed", err)
	}
}
