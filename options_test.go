package sluice_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/memory"
)

// noPanic runs fn and fails the test if it panics.
func noPanic(t *testing.T, what string, fn func() error) {
	t.Helper()
	defer func() {
		if v := recover(); v != nil {
			t.Errorf("%s panicked: %v", what, v)
		}
	}()
	if err := fn(); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func TestNilOptionsAreIgnoredByEveryConstructor(t *testing.T) {
	b := startBroker(t)
	noPanic(t, "NewProcessor with a nil option", func() error {
		_, err := sluice.NewProcessor(defineCounter("nil-opts", "in"), nil, sluice.Storage(memory.Builder()))
		return err
	})
	noPanic(t, "NewBatchProcessor with a nil option", func() error {
		bg := sluice.DefineBatchGroup[string, string]("nil-opts-batch")
		sluice.BatchInput(bg, "in", codec.String(), codec.String())
		sluice.HandleBatches(bg, func(sluice.BatchContext, []sluice.Record[string, string], sluice.Sender) error { return nil })
		_, err := sluice.NewBatchProcessor(bg, nil, sluice.Storage(memory.Builder()))
		return err
	})
	noPanic(t, "NewView with a nil option", func() error {
		_, err := sluice.NewView("nil-opts-table", codec.String(), nil)
		return err
	})
	noPanic(t, "NewWindowView with a nil option", func() error {
		_, err := sluice.NewWindowView("nil-opts-table", "counts", codec.Int64(), nil)
		return err
	})
	noPanic(t, "NewEmitter with a nil option", func() error {
		em, err := sluice.NewEmitter("nil-opts-in", codec.String(), append(emitterOpts(b, 2), nil)...)
		if err == nil {
			err = em.Close()
		}
		return err
	})
	noPanic(t, "ConcurrentInput with a nil option", func() error {
		g := sluice.DefineGroup[struct{}]("nil-opts-concurrent")
		sluice.ConcurrentInput(g, "in", codec.String(), func(*sluice.Context[struct{}], string) error { return nil }, 4, nil)
		return g.Validate()
	})
}

// wantOptionError fails the test unless err is an error that names option.
func wantOptionError(t *testing.T, what string, err error, option string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one naming %s", what, option)
		return
	}
	if !strings.Contains(err.Error(), option) {
		t.Errorf("%s: error %q does not name %s", what, err, option)
	}
}

func TestConstructorsRejectInvalidBrokersAndTopicDefaults(t *testing.T) {
	cases := []struct {
		opt    sluice.Opt
		option string
	}{
		{sluice.Brokers(), "Brokers"},
		{sluice.Brokers("127.0.0.1:9092", ""), "Brokers"},
		{sluice.TopicDefaults(0, 1), "TopicDefaults"},
		{sluice.TopicDefaults(-2, 1), "TopicDefaults"},
		{sluice.TopicDefaults(3, 0), "TopicDefaults"},
		{sluice.TopicDefaults(3, -2), "TopicDefaults"},
	}
	for _, c := range cases {
		_, err := sluice.NewProcessor(defineCounter("bad-client-opts", "in"), c.opt, sluice.Storage(memory.Builder()))
		wantOptionError(t, "NewProcessor", err, c.option)
		_, err = sluice.NewView("bad-client-opts-table", codec.String(), c.opt)
		wantOptionError(t, "NewView", err, c.option)
		_, err = sluice.NewWindowView("bad-client-opts-table", "counts", codec.Int64(), c.opt)
		wantOptionError(t, "NewWindowView", err, c.option)
		// No broker listens there: the options must be rejected before
		// the emitter connects.
		_, err = sluice.NewEmitter("bad-client-opts-in", codec.String(), sluice.Brokers("127.0.0.1:1"), c.opt)
		wantOptionError(t, "NewEmitter", err, c.option)
	}
	// -1 asks for the broker's default, of partitions and of replication.
	if _, err := sluice.NewProcessor(defineCounter("bad-client-opts", "in"), sluice.TopicDefaults(-1, -1), sluice.Storage(memory.Builder())); err != nil {
		t.Errorf("TopicDefaults(-1, -1): %v", err)
	}
}

func TestNewProcessorRejectsInvalidTimeoutsAndChoices(t *testing.T) {
	cases := []struct {
		opt    sluice.ProcessorOpt
		option string
	}{
		{sluice.ShutdownTimeout(0), "ShutdownTimeout"},
		{sluice.ShutdownTimeout(-time.Second), "ShutdownTimeout"},
		{sluice.SessionTimeout(0), "SessionTimeout"},
		{sluice.SessionTimeout(-time.Second), "SessionTimeout"},
		{sluice.WindowsRetentionMargin(-time.Hour), "WindowsRetentionMargin"},
		{sluice.Guarantee(sluice.DeliveryGuarantee(7)), "Guarantee"},
		{sluice.StartAt(sluice.StartOffset(9)), "StartAt"},
	}
	for _, c := range cases {
		_, err := sluice.NewProcessor(defineCounter("bad-processor-opts", "in"), c.opt, sluice.Storage(memory.Builder()))
		wantOptionError(t, "NewProcessor", err, c.option)
	}
	if _, err := sluice.NewProcessor(defineCounter("bad-processor-opts", "in"), sluice.WindowsRetentionMargin(0), sluice.Storage(memory.Builder())); err != nil {
		t.Errorf("WindowsRetentionMargin(0): %v", err)
	}
}

func TestStorageNilKeepsTheDefaultStorage(t *testing.T) {
	b := startBroker(t)
	em, err := sluice.NewEmitter("storage-nil-table", codec.String(), emitterOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Emit(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	_ = em.Close()
	v, err := sluice.NewView("storage-nil-table", codec.String(), append(viewOpts(b, 2), sluice.Storage(nil))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		_ = v.Run(ctx)
	}()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatalf("view with Storage(nil): %v (Run panicked: %v)", err, <-done)
	}
	if got, err := v.Get("k"); err != nil || got != "v" {
		t.Errorf("get k: %q, %v; want v", got, err)
	}
	cancel()
	if p := <-done; p != nil {
		t.Fatalf("Run panicked: %v", p)
	}
}

func TestNewBatchProcessorRejectsBatchSizeAndBatchWaitThatAreNotPositive(t *testing.T) {
	define := func() *sluice.BatchGroup[string, string] {
		bg := sluice.DefineBatchGroup[string, string]("bad-batch-opts")
		sluice.BatchInput(bg, "in", codec.String(), codec.String())
		sluice.HandleBatches(bg, func(sluice.BatchContext, []sluice.Record[string, string], sluice.Sender) error { return nil })
		return bg
	}
	cases := []struct {
		opt    sluice.BatchProcessorOpt
		option string
	}{
		{sluice.BatchSize(0), "BatchSize"},
		{sluice.BatchSize(-1), "BatchSize"},
		{sluice.BatchWait(0), "BatchWait"},
		{sluice.BatchWait(-time.Second), "BatchWait"},
	}
	for _, c := range cases {
		_, err := sluice.NewBatchProcessor(define(), c.opt, sluice.Storage(memory.Builder()))
		wantOptionError(t, "NewBatchProcessor", err, c.option)
	}
	// Without either option the defaults apply.
	if _, err := sluice.NewBatchProcessor(define(), sluice.Storage(memory.Builder())); err != nil {
		t.Errorf("NewBatchProcessor with the default BatchSize and BatchWait: %v", err)
	}
	if _, err := sluice.NewBatchProcessor(define(), sluice.BatchSize(1), sluice.BatchWait(time.Millisecond), sluice.Storage(memory.Builder())); err != nil {
		t.Errorf("NewBatchProcessor with BatchSize(1) and BatchWait(1ms): %v", err)
	}
}
