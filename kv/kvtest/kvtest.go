// Package kvtest holds the conformance tests every kv.Store implementation
// must pass, so that each is held to the same contract by the same code.
//
// An implementation's test file calls Run with a function that makes a new,
// empty store of int64 values for each subtest:
//
//	func TestMemoryConformance(t *testing.T) {
//		kvtest.Run(t, func(t *testing.T) kvtest.Fixture {
//			return kvtest.Fixture{Store: kv.NewMemory[int64]()}
//		})
//	}
//
// A store that encodes values sets Fixture.PutRaw as well, so that the suite
// can check what happens when a stored value does not decode as a decimal
// integer (codec.Int64's format).
package kvtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/kv"
)

// Fixture is one empty store under test and the means to corrupt it.
type Fixture struct {
	// Store is the store under test; it must hold no keys.
	Store kv.Store[int64]
	// PutRaw, if set, writes raw bytes under key past the store's codec, where
	// the store's Get of key will look for them. The decode tests are
	// skipped when it is nil.
	PutRaw func(key string, raw []byte) error
}

// Run runs the conformance tests, each as a subtest with a store of its own
// made by open.
func Run(t *testing.T, open func(t *testing.T) Fixture) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f Fixture)
	}{
		{"GetOfMissingKeyIsNotOK", testGetMissing},
		{"PutThenGetReturnsValue", testRoundTrip},
		{"PutOverwritesValue", testOverwrite},
		{"DeleteRemovesValue", testDelete},
		{"DeleteOfMissingKeyIsNotAnError", testDeleteMissing},
		{"GetManyLeavesOutMissingKeys", testGetManyMissing},
		{"PutManyThenGetManyOfManyKeys", testPutManyGetMany},
		{"PutManyOverwritesAndKeepsOtherKeys", testPutManyOverwrite},
		{"EmptyPutManyAndGetManyDoNothing", testEmpty},
		{"GetManyOfRepeatedKeyReturnsItOnce", testGetManyRepeated},
		{"KeysWithOddBytesRoundTrip", testOddKeys},
		{"FlushKeepsWrites", testFlush},
		{"GetManySeesPutManyWholeOrNotAtAll", testPutManyWhole},
		{"ConcurrentUseLosesNoWrites", testConcurrent},
		{"UndecodableValueIsAnErrorNamingKey", testDecodeError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func get(t *testing.T, s kv.Store[int64], key string) (int64, bool) {
	t.Helper()
	v, ok, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return v, ok
}

func put(t *testing.T, s kv.Store[int64], key string, v int64) {
	t.Helper()
	if err := s.Put(context.Background(), key, v); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func getMany(t *testing.T, s kv.Store[int64], keys []string) map[string]int64 {
	t.Helper()
	m, err := s.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatalf("get many (%d keys): %v", len(keys), err)
	}
	if m == nil {
		t.Fatalf("get many (%d keys) returned a nil map", len(keys))
	}
	return m
}

func putMany(t *testing.T, s kv.Store[int64], rows map[string]int64) {
	t.Helper()
	if err := s.PutMany(context.Background(), rows); err != nil {
		t.Fatalf("put many (%d rows): %v", len(rows), err)
	}
}

func wantValue(t *testing.T, s kv.Store[int64], key string, want int64) {
	t.Helper()
	v, ok := get(t, s, key)
	if !ok {
		t.Fatalf("get %q: no value, want %d", key, want)
	}
	if v != want {
		t.Fatalf("get %q = %d, want %d", key, v, want)
	}
}

func wantMissing(t *testing.T, s kv.Store[int64], key string) {
	t.Helper()
	if v, ok := get(t, s, key); ok {
		t.Fatalf("get %q = %d, want no value", key, v)
	}
}

func wantMap(t *testing.T, got, want map[string]int64) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("key %q missing, want %d", k, w)
		} else if g != w {
			t.Errorf("key %q = %d, want %d", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %q = %d", k, g)
		}
	}
	t.FailNow()
}

func testGetMissing(t *testing.T, f Fixture) {
	wantMissing(t, f.Store, "nobody")
	put(t, f.Store, "somebody", 1)
	wantMissing(t, f.Store, "nobody")
	wantMissing(t, f.Store, "somebody-else")
}

func testRoundTrip(t *testing.T, f Fixture) {
	for key, v := range map[string]int64{
		"zero":     0,
		"one":      1,
		"negative": -42,
		"max":      1<<63 - 1,
		"min":      -1 << 63,
	} {
		put(t, f.Store, key, v)
		wantValue(t, f.Store, key, v)
	}
}

func testOverwrite(t *testing.T, f Fixture) {
	put(t, f.Store, "k", 1)
	put(t, f.Store, "k", 2)
	wantValue(t, f.Store, "k", 2)
	put(t, f.Store, "k", 0)
	wantValue(t, f.Store, "k", 0)
}

func testDelete(t *testing.T, f Fixture) {
	put(t, f.Store, "gone", 1)
	put(t, f.Store, "kept", 2)
	if err := f.Store.Delete(context.Background(), "gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wantMissing(t, f.Store, "gone")
	wantValue(t, f.Store, "kept", 2)
	wantMap(t, getMany(t, f.Store, []string{"gone", "kept"}), map[string]int64{"kept": 2})
	put(t, f.Store, "gone", 3)
	wantValue(t, f.Store, "gone", 3)
}

func testDeleteMissing(t *testing.T, f Fixture) {
	if err := f.Store.Delete(context.Background(), "never-there"); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
	put(t, f.Store, "k", 1)
	for range 2 {
		if err := f.Store.Delete(context.Background(), "k"); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	wantMissing(t, f.Store, "k")
}

func testGetManyMissing(t *testing.T, f Fixture) {
	put(t, f.Store, "a", 1)
	put(t, f.Store, "c", 3)
	got := getMany(t, f.Store, []string{"a", "b", "c", "d"})
	wantMap(t, got, map[string]int64{"a": 1, "c": 3})
	wantMap(t, getMany(t, f.Store, []string{"x", "y"}), map[string]int64{})
}

func testPutManyGetMany(t *testing.T, f Fixture) {
	// More keys than a store is likely to send in one request.
	const n = 2500
	rows := make(map[string]int64, n)
	keys := make([]string, 0, n+10)
	for i := range n {
		k := fmt.Sprintf("key-%05d", i)
		rows[k] = int64(i * 7)
		keys = append(keys, k)
	}
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("missing-%d", i))
	}
	putMany(t, f.Store, rows)
	wantMap(t, getMany(t, f.Store, keys), rows)
	wantValue(t, f.Store, "key-01234", 1234*7)
}

func testPutManyOverwrite(t *testing.T, f Fixture) {
	putMany(t, f.Store, map[string]int64{"a": 1, "b": 2})
	putMany(t, f.Store, map[string]int64{"b": 20, "c": 30})
	wantMap(t, getMany(t, f.Store, []string{"a", "b", "c"}), map[string]int64{"a": 1, "b": 20, "c": 30})
}

func testEmpty(t *testing.T, f Fixture) {
	put(t, f.Store, "k", 1)
	putMany(t, f.Store, nil)
	putMany(t, f.Store, map[string]int64{})
	wantMap(t, getMany(t, f.Store, nil), map[string]int64{})
	wantMap(t, getMany(t, f.Store, []string{}), map[string]int64{})
	wantValue(t, f.Store, "k", 1)
}

func testGetManyRepeated(t *testing.T, f Fixture) {
	put(t, f.Store, "k", 5)
	wantMap(t, getMany(t, f.Store, []string{"k", "k", "missing", "k", "missing"}), map[string]int64{"k": 5})
}

// oddKeys are keys that a store must keep byte for byte: separators,
// whitespace, glob and quoting characters, non-ASCII text, bytes that are
// not UTF-8, the empty key and a long key.
func oddKeys() []string {
	return []string{
		"",
		" ",
		"with space",
		" leading and trailing ",
		"a/b/c",
		"/",
		"colon:separated:key",
		"tab\tnew\nline\r",
		"glob*?[ab]\\",
		`quote"single'`,
		"ünïcødé ✓ 日本語 🙂",
		"\x00zero\x00",
		"\xff\xfe not utf-8",
		strings.Repeat("long/", 400),
	}
}

func testOddKeys(t *testing.T, f Fixture) {
	keys := oddKeys()
	for i, k := range keys {
		put(t, f.Store, k, int64(i))
	}
	want := make(map[string]int64, len(keys))
	for i, k := range keys {
		wantValue(t, f.Store, k, int64(i))
		want[k] = int64(i)
	}
	wantMap(t, getMany(t, f.Store, keys), want)

	// The same through the batch calls, with other values.
	rows := make(map[string]int64, len(keys))
	for i, k := range keys {
		rows[k] = int64(100 + i)
	}
	putMany(t, f.Store, rows)
	wantMap(t, getMany(t, f.Store, keys), rows)

	for _, k := range keys {
		if err := f.Store.Delete(context.Background(), k); err != nil {
			t.Fatalf("delete %q: %v", k, err)
		}
		wantMissing(t, f.Store, k)
	}
	wantMap(t, getMany(t, f.Store, keys), map[string]int64{})
}

func testFlush(t *testing.T, f Fixture) {
	ctx := context.Background()
	if err := f.Store.Flush(ctx); err != nil {
		t.Fatalf("flush of an empty store: %v", err)
	}
	put(t, f.Store, "a", 1)
	putMany(t, f.Store, map[string]int64{"b": 2, "c": 3})
	if err := f.Store.Delete(ctx, "c"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := f.Store.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	wantMap(t, getMany(t, f.Store, []string{"a", "b", "c"}), map[string]int64{"a": 1, "b": 2})
	put(t, f.Store, "a", 10)
	if err := f.Store.Flush(ctx); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	wantValue(t, f.Store, "a", 10)
}

// testPutManyWhole has one writer put rounds of the same value under a set of
// keys while readers read the set: every read must see a single round.
func testPutManyWhole(t *testing.T, f Fixture) {
	const nkeys, rounds, readers = 100, 100, 2
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("whole-%03d", i)
	}
	ctx := context.Background()
	done := make(chan struct{})
	errs := make(chan error, readers+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		rows := make(map[string]int64, nkeys)
		for r := range int64(rounds) {
			for _, k := range keys {
				rows[k] = r
			}
			if err := f.Store.PutMany(ctx, rows); err != nil {
				errs <- fmt.Errorf("put many, round %d: %w", r, err)
				return
			}
		}
	})
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				m, err := f.Store.GetMany(ctx, keys)
				if err != nil {
					errs <- fmt.Errorf("get many: %w", err)
					return
				}
				if len(m) != 0 && len(m) != nkeys {
					errs <- fmt.Errorf("get many saw %d of the %d keys written together", len(m), nkeys)
					return
				}
				for k, v := range m {
					if v != m[keys[0]] {
						errs <- fmt.Errorf("get many saw %q = %d and %q = %d, written in different calls", keys[0], m[keys[0]], k, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m := getMany(t, f.Store, keys)
	for _, k := range keys {
		if m[k] != rounds-1 {
			t.Fatalf("after all rounds %q = %d, want %d", k, m[k], rounds-1)
		}
	}
}

// testConcurrent has several goroutines write keys of their own with Put and
// PutMany, delete some, and read each other's keys, all at once; afterwards
// every goroutine's last write must be there.
func testConcurrent(t *testing.T, f Fixture) {
	const workers, perWorker = 8, 50
	ctx := context.Background()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			other := fmt.Sprintf("w%d/k%d", (w+1)%workers, 0)
			for i := range perWorker {
				key := fmt.Sprintf("w%d/k%d", w, i)
				if err := f.Store.Put(ctx, key, int64(i)); err != nil {
					errs <- fmt.Errorf("put %q: %w", key, err)
					return
				}
				batch := map[string]int64{
					fmt.Sprintf("w%d/batch/%d", w, i%5): int64(i),
					fmt.Sprintf("w%d/last", w):          int64(i),
				}
				if err := f.Store.PutMany(ctx, batch); err != nil {
					errs <- fmt.Errorf("put many: %w", err)
					return
				}
				if i%10 == 0 {
					if err := f.Store.Delete(ctx, key); err != nil {
						errs <- fmt.Errorf("delete %q: %w", key, err)
						return
					}
				}
				if _, _, err := f.Store.Get(ctx, other); err != nil {
					errs <- fmt.Errorf("get %q: %w", other, err)
					return
				}
				if _, err := f.Store.GetMany(ctx, []string{other, key}); err != nil {
					errs <- fmt.Errorf("get many: %w", err)
					return
				}
			}
			if err := f.Store.Flush(ctx); err != nil {
				errs <- fmt.Errorf("flush: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range workers {
		for i := range perWorker {
			key := fmt.Sprintf("w%d/k%d", w, i)
			if i%10 == 0 {
				wantMissing(t, f.Store, key)
			} else {
				wantValue(t, f.Store, key, int64(i))
			}
		}
		wantValue(t, f.Store, fmt.Sprintf("w%d/last", w), perWorker-1)
		for b := range 5 {
			wantValue(t, f.Store, fmt.Sprintf("w%d/batch/%d", w, b), int64(perWorker-5+b))
		}
	}
}

func testDecodeError(t *testing.T, f Fixture) {
	if f.PutRaw == nil {
		t.Skip("the store keeps values without encoding them")
	}
	ctx := context.Background()
	const bad = "bad key/ü"
	put(t, f.Store, "good", 7)
	if err := f.PutRaw(bad, []byte("not a number")); err != nil {
		t.Fatalf("put raw: %v", err)
	}

	v, ok, err := f.Store.Get(ctx, bad)
	wantDecodeError(t, "get", err, bad)
	if ok || v != 0 {
		t.Errorf("get of an undecodable value returned ok=%v v=%d with its error", ok, v)
	}
	_, err = f.Store.GetMany(ctx, []string{"good", bad, "missing"})
	wantDecodeError(t, "get many", err, bad)

	// The bad value is still there for a human to look at, the rest of the
	// store is unaffected, and it can be overwritten.
	wantValue(t, f.Store, "good", 7)
	_, _, err = f.Store.Get(ctx, bad)
	wantDecodeError(t, "second get", err, bad)
	put(t, f.Store, bad, 8)
	wantValue(t, f.Store, bad, 8)
}

func wantDecodeError(t *testing.T, op string, err error, key string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s of an undecodable value: no error", op)
	}
	var de *kv.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("%s: error %v (%T) is not a *kv.DecodeError", op, err, err)
	}
	if de.Key != key {
		t.Errorf("%s: DecodeError.Key = %q, want %q", op, de.Key, key)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
		t.Errorf("%s: error %q does not name key %q", op, err, key)
	}
}
