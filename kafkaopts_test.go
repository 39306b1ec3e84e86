package sluice_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// newClients is a client hook that keeps every client it is given.
type newClients struct {
	mu  sync.Mutex
	cls []*kgo.Client
}

// OnNewClient implements kgo.HookNewClient.
func (h *newClients) OnNewClient(cl *kgo.Client) {
	h.mu.Lock()
	h.cls = append(h.cls, cl)
	h.mu.Unlock()
}

// with returns the first client whose value of the option fn is want, if
// one was made.
func (h *newClients) with(fn any, want any) *kgo.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cl := range h.cls {
		if cl.OptValue(fn) == want {
			return cl
		}
	}
	return nil
}

// ofGroup returns the client of the consumer group group, if one was made.
func (h *newClients) ofGroup(group string) *kgo.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cl := range h.cls {
		if g, _ := cl.OptValue(kgo.ConsumerGroup).(string); g == group {
			return cl
		}
	}
	return nil
}

// TestKafkaOptionsOverrideTheProcessorsClientDefaults runs a processor whose
// KafkaOptions set the fetch wait and the producer linger, which sluice
// also sets by default, and checks that its group client has the user's
// values, at least once and exactly once.
func TestKafkaOptionsOverrideTheProcessorsClientDefaults(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			b := startBroker(t)
			hook := &newClients{}
			group := "kafka-options-" + g.String()
			runProcessor(t, defineCounter(group, group+"-in"), append(processorOpts(b, 2, t.TempDir()),
				sluice.Guarantee(g),
				sluice.KafkaOptions(
					kgo.FetchMaxWait(20*time.Millisecond),
					kgo.ProducerLinger(3*time.Millisecond),
					kgo.WithHooks(hook),
				))...)
			var cl *kgo.Client
			waitFor(t, 30*time.Second, func() error {
				if cl = hook.ofGroup(group); cl == nil {
					return errors.New("no client of the group yet")
				}
				return nil
			})
			if got := cl.OptValue(kgo.FetchMaxWait); got != 20*time.Millisecond {
				t.Errorf("FetchMaxWait is %v, want the 20ms KafkaOptions gave", got)
			}
			if got := cl.OptValue(kgo.ProducerLinger); got != 3*time.Millisecond {
				t.Errorf("ProducerLinger is %v, want the 3ms KafkaOptions gave", got)
			}
		})
	}
}

// TestKafkaOptionsRefuseTheOptionsAProcessorOwns gives NewProcessor, one at
// a time, client options that a processor sets itself, some of them to
// kgo's default value, and checks that each is refused with an error that
// names it.
func TestKafkaOptionsRefuseTheOptionsAProcessorOwns(t *testing.T) {
	noop := func(context.Context, *kgo.Client, map[string][]int32) {}
	for name, opt := range map[string]kgo.Opt{
		"kgo.ConsumerGroup":        kgo.ConsumerGroup("another"),
		"kgo.ConsumeTopics":        kgo.ConsumeTopics("another"),
		"kgo.FetchIsolationLevel":  kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		"kgo.TransactionalID":      kgo.TransactionalID("another"),
		"kgo.RecordPartitioner":    kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		"kgo.ConsumeResetOffset":   kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		"kgo.SessionTimeout":       kgo.SessionTimeout(45 * time.Second),
		"kgo.DisableAutoCommit":    kgo.DisableAutoCommit(),
		"kgo.AutoCommitInterval":   kgo.AutoCommitInterval(time.Second),
		"kgo.OnPartitionsRevoked":  kgo.OnPartitionsRevoked(noop),
		"kgo.Balancers":            kgo.Balancers(kgo.CooperativeStickyBalancer()),
		"kgo.BlockRebalanceOnPoll": kgo.BlockRebalanceOnPoll(),
		"kgo.KeepControlRecords":   kgo.KeepControlRecords(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sluice.NewProcessor(defineCounter("owned", "owned-in"),
				sluice.Storage(pebble.Builder(t.TempDir())), sluice.KafkaOptions(kgo.ClientID("mine"), opt))
			if err == nil {
				t.Fatalf("NewProcessor accepted KafkaOptions(%s)", name)
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "is set by sluice") {
				t.Fatalf("error %q does not name %s", err, name)
			}
		})
	}
	if _, err := sluice.NewProcessor(defineCounter("owned", "owned-in"), sluice.Storage(pebble.Builder(t.TempDir())),
		sluice.KafkaOptions(kgo.ClientID("mine"), kgo.FetchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.ZstdCompression()))); err != nil {
		t.Fatalf("NewProcessor refused options it does not own: %v", err)
	}
}

// probeBrokerAddr is a seed broker nothing listens at: an object refused
// before it connects never dials it.
const probeBrokerAddr = "127.0.0.1:1"

// refused checks that err refuses the option name as one sluice sets.
func refused(t *testing.T, err error, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("KafkaOptions(%s) accepted", name)
	}
	if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "is set by sluice") {
		t.Fatalf("error %q does not name %s", err, name)
	}
}

// A view's table reader gets sluice's fetch wait unless KafkaOptions give
// one: the user's tuning overrides sluice's default.
func TestKafkaOptionsOverrideTheViewsReaderDefaults(t *testing.T) {
	b := startBroker(t)
	const parts = 2
	em := newEmitter(t, "view-options", emitterOpts(b, parts))
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	hook := &newClients{}
	startView(t, "view-options", codec.String(), append(viewOpts(b, parts),
		sluice.KafkaOptions(kgo.FetchMaxWait(20*time.Millisecond), kgo.WithHooks(hook)))...)
	// The reader is the client that keeps control records.
	cl := hook.with(kgo.KeepControlRecords, true)
	if cl == nil {
		t.Fatal("the view made no table reader")
	}
	if got := cl.OptValue(kgo.FetchMaxWait); got != 20*time.Millisecond {
		t.Errorf("FetchMaxWait is %v, want the 20ms KafkaOptions gave", got)
	}
}

// A view, and a window view, refuse the options their table reader owns
// with an error that names the option, instead of ignoring them.
func TestKafkaOptionsRefuseTheOptionsAViewOwns(t *testing.T) {
	for name, opt := range map[string]kgo.Opt{
		"kgo.ConsumerGroup":       kgo.ConsumerGroup("another"),
		"kgo.ConsumeTopics":       kgo.ConsumeTopics("another"),
		"kgo.ConsumeResetOffset":  kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		"kgo.FetchIsolationLevel": kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		"kgo.KeepControlRecords":  kgo.KeepControlRecords(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sluice.NewView("owned-table", codec.String(), sluice.KafkaOptions(kgo.ClientID("mine"), opt))
			refused(t, err, name)
			_, err = sluice.NewWindowView("owned-table", "agg", codec.String(), sluice.KafkaOptions(opt))
			refused(t, err, name)
		})
	}
	if _, err := sluice.NewView("owned-table", codec.String(),
		sluice.KafkaOptions(kgo.ClientID("mine"), kgo.FetchMaxBytes(1<<20), kgo.FetchMaxWait(time.Second))); err != nil {
		t.Fatalf("NewView refused options it does not own: %v", err)
	}
	noop := func(context.Context, *kgo.Client, map[string][]int32) {}
	if _, err := sluice.NewView("owned-table", codec.String(), sluice.KafkaOptions(kgo.OnPartitionsAssigned(noop))); err == nil {
		t.Fatal("NewView accepted a group callback for a client of no group")
	}
}

// An emitter's client uses the linger KafkaOptions give, as any tuning.
func TestKafkaOptionsSetTheLingerOfAnEmitter(t *testing.T) {
	b := startBroker(t)
	hook := &newClients{}
	em, err := sluice.NewEmitter("emitter-linger", codec.String(), emitterOpts(b, 1,
		sluice.KafkaOptions(kgo.ProducerLinger(37*time.Millisecond), kgo.WithHooks(hook)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if cl := hook.with(kgo.ProducerLinger, 37*time.Millisecond); cl == nil {
		t.Fatal("the emitter's client does not linger the 37ms KafkaOptions gave")
	}
}

// An emitter refuses the options it owns, and a linger given both with
// DeliveryInterval and with KafkaOptions, with an error that names the
// option, instead of ignoring them.
func TestKafkaOptionsRefuseTheOptionsAnEmitterOwns(t *testing.T) {
	for name, opts := range map[string][]sluice.EmitterOpt{
		"kgo.RecordPartitioner": {sluice.KafkaOptions(kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))},
		"kgo.TransactionalID":   {sluice.KafkaOptions(kgo.TransactionalID("another"))},
		"kgo.ManualFlushing":    {sluice.KafkaOptions(kgo.ManualFlushing())},
		"kgo.ConsumeTopics":     {sluice.KafkaOptions(kgo.ConsumeTopics("another"))},
		"kgo.ProducerLinger":    {sluice.DeliveryInterval(time.Second), sluice.KafkaOptions(kgo.ProducerLinger(time.Millisecond))},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sluice.NewEmitter("owned-out", codec.String(), append([]sluice.EmitterOpt{sluice.Brokers(probeBrokerAddr)}, opts...)...)
			refused(t, err, name)
		})
	}
}

// At least once, a group with a concurrent input sets its client's context,
// whose commit hook writes which records have finished: a context given
// through KafkaOptions is refused rather than silently replaced. Exactly
// once, and without a concurrent input, the client's context is the user's.
func TestKafkaOptionsRefuseAClientContextWhereAConcurrentInputNeedsIt(t *testing.T) {
	concurrent := func(name string) *sluice.Group[struct{}] {
		g := sluice.DefineGroup[struct{}](name)
		sluice.ConcurrentInput(g, name+"-in", codec.String(), func(*sluice.Context[struct{}], string) error { return nil }, 4)
		return g
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, opt := range map[string]kgo.Opt{
		"a context of its own": kgo.WithContext(ctx),
		"the default context":  kgo.WithContext(context.Background()),
	} {
		_, err := sluice.NewProcessor(concurrent("ccctx"), sluice.KafkaOptions(opt))
		if err == nil {
			t.Fatalf("%s: NewProcessor accepted kgo.WithContext for a group with a concurrent input, at least once", name)
		}
		refused(t, err, "kgo.WithContext")
	}
	if _, err := sluice.NewProcessor(concurrent("ccctx-eos"), sluice.Guarantee(sluice.ExactlyOnce), sluice.KafkaOptions(kgo.WithContext(ctx))); err != nil {
		t.Errorf("exactly once, NewProcessor refused kgo.WithContext: %v", err)
	}
	if _, err := sluice.NewProcessor(defineCounter("ctx", "ctx-in"), sluice.Storage(pebble.Builder(t.TempDir())), sluice.KafkaOptions(kgo.WithContext(ctx))); err != nil {
		t.Errorf("without a concurrent input, NewProcessor refused kgo.WithContext: %v", err)
	}
}
