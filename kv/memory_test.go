package kv_test

import (
	"context"
	"testing"

	"github.com/sluice-io/sluice/kv"
	"github.com/sluice-io/sluice/kv/kvtest"
)

func TestMemoryConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kvtest.Fixture {
		return kvtest.Fixture{Store: kv.NewMemory[int64]()}
	})
}

func TestMemoryLenCountsKeysWithValues(t *testing.T) {
	ctx := context.Background()
	m := kv.NewMemory[string]()
	if n := m.Len(); n != 0 {
		t.Fatalf("Len of a new Memory = %d, want 0", n)
	}
	if err := m.PutMany(ctx, map[string]string{"a": "1", "b": "2", "c": "3"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "a", "10"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "missing"); err != nil {
		t.Fatal(err)
	}
	if n := m.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}
