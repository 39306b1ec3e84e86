package memory_test

import (
	"testing"

	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
	"github.com/sluice-io/sluice/store/storetest"
)

func TestMemoryStoreMeetsStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memory.New() })
}

func TestBuilderGivesEachPartitionItsOwnEmptyStore(t *testing.T) {
	build := memory.Builder()
	a, err := build("clicks", 0)
	if err != nil {
		t.Fatalf("build clicks/0: %v", err)
	}
	defer a.Close()
	b, err := build("clicks", 1)
	if err != nil {
		t.Fatalf("build clicks/1: %v", err)
	}
	defer b.Close()
	c, err := build("views", 0)
	if err != nil {
		t.Fatalf("build views/0: %v", err)
	}
	defer c.Close()

	storetest.MustApply(t, a, 9, storetest.Set("k", "a"))
	storetest.WantGet(t, a, "k", "a")
	for _, s := range []store.Store{b, c} {
		storetest.WantMissing(t, s, "k")
		storetest.WantOffset(t, s, -1)
	}
}

func TestIteratorOutlivesClosedStore(t *testing.T) {
	s := memory.New()
	storetest.MustApply(t, s, 0, storetest.Set("a", "1"), storetest.Set("b", "2"))
	it, err := s.Iter(nil, nil)
	if err != nil {
		t.Fatalf("iter: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	var n int
	for it.Next() {
		n++
	}
	if n != 2 {
		t.Fatalf("iterator saw %d rows after close, want its 2-row snapshot", n)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close iterator: %v", err)
	}
}

func BenchmarkApply(b *testing.B) {
	storetest.BenchApply(b, func(*testing.B) store.Store { return memory.New() })
}
