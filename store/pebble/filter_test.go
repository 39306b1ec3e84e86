package pebble

import (
	"errors"
	"fmt"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/sluice-io/sluice/store"
)

// TestEveryTableFileHasABloomFilter checks that the table files of a
// shared database carry a Bloom filter, those flushed from its memtables
// and those a loader wrote alike, and that reads of present and missing
// rows answer as before.
func TestEveryTableFileHasABloomFilter(t *testing.T) {
	build := Builder(t.TempDir(), MemoryBudget(4<<20))
	live, err := build("t", 0)
	if err != nil {
		t.Fatalf("build t/0: %v", err)
	}
	loaded, err := build("t", 1)
	if err != nil {
		t.Fatalf("build t/1: %v", err)
	}
	defer func() {
		for _, s := range []store.Store{live, loaded} {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}()
	const rows = 2000
	changes := make([]store.Change, 0, rows)
	for i := range rows {
		changes = append(changes, store.Change{Key: fmt.Appendf(nil, "row-%05d", 2*i), Value: []byte("value")})
	}
	if err := live.Apply(changes, 1); err != nil {
		t.Fatalf("apply: %v", err)
	}
	l, err := loaded.(store.BulkLoader).BulkLoad()
	if err != nil {
		t.Fatalf("bulk load: %v", err)
	}
	if err := l.Apply(changes, 1); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close loader: %v", err)
	}
	db := live.(*pebbleStore).db
	if err := db.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}

	levels, err := db.SSTables(pebbledb.WithProperties())
	if err != nil {
		t.Fatalf("list table files: %v", err)
	}
	files := 0
	for level, tables := range levels {
		for _, f := range tables {
			files++
			if got, want := f.Properties.FilterPolicyName, bloom.FilterPolicy(filterBitsPerKey).Name(); got != want {
				t.Errorf("table file %s in L%d: filter policy %q, want %q", f.FileNum, level, got, want)
			}
		}
	}
	if files < 2 {
		t.Fatalf("%d table files, want the flushed one and the loaded one at least", files)
	}

	for _, s := range []store.Store{live, loaded} {
		for _, i := range []int{0, 1, 2*rows - 2, 2*rows - 1} {
			key := fmt.Appendf(nil, "row-%05d", i)
			v, err := s.Get(key)
			switch {
			case i%2 == 0 && (err != nil || string(v) != "value"):
				t.Errorf("get %s: %q, %v; want \"value\"", key, v, err)
			case i%2 == 1 && !errors.Is(err, store.ErrNotFound):
				t.Errorf("get %s: %q, %v; want store.ErrNotFound", key, v, err)
			}
		}
	}
}
