package sluice_test

import (
	"testing"

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
