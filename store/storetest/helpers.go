package storetest

// Helpers for store tests, exported so that an implementation's own tests
// can use them too.

import (
	"errors"
	"testing"

	"github.com/sluice-io/sluice/store"
)

// Row is a key and its value, as a test expects to find it in a store.
type Row struct {
	Key, Value string
}

// Rows returns every row of s in [lo, hi), in iteration order, and fails t if
// the iterator reports an error.
func Rows(t testing.TB, s store.Store, lo, hi []byte) []Row {
	t.Helper()
	it, err := s.Iter(lo, hi)
	if err != nil {
		t.Fatalf("iter [%q, %q): %v", lo, hi, err)
	}
	var rows []Row
	for it.Next() {
		rows = append(rows, Row{string(it.Key()), string(it.Value())})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate [%q, %q): %v", lo, hi, err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close iterator: %v", err)
	}
	return rows
}

// MustApply applies changes at offset and fails t on error.
func MustApply(t testing.TB, s store.Store, offset int64, changes ...store.Change) {
	t.Helper()
	if err := s.Apply(changes, offset); err != nil {
		t.Fatalf("apply at offset %d: %v", offset, err)
	}
}

// Set returns a change that writes value under key.
func Set(key, value string) store.Change {
	return store.Change{Key: []byte(key), Value: []byte(value)}
}

// Del returns a change that deletes key.
func Del(key string) store.Change {
	return store.Change{Key: []byte(key)}
}

// WantGet fails t unless s holds want under key.
func WantGet(t testing.TB, s store.Store, key, want string) {
	t.Helper()
	got, err := s.Get([]byte(key))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("get %q = %q, want %q", key, got, want)
	}
}

// WantMissing fails t unless Get of key returns store.ErrNotFound.
func WantMissing(t testing.TB, s store.Store, key string) {
	t.Helper()
	if v, err := s.Get([]byte(key)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get %q = %q, %v; want store.ErrNotFound", key, v, err)
	}
}

// WantOffset fails t unless the checkpoint of s is want.
func WantOffset(t testing.TB, s store.Store, want int64) {
	t.Helper()
	got, err := s.Offset()
	if err != nil {
		t.Fatalf("offset: %v", err)
	}
	if got != want {
		t.Fatalf("offset = %d, want %d", got, want)
	}
}
