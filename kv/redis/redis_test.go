package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/redistest"
	"github.com/sluice-io/sluice/kv"
	"github.com/sluice-io/sluice/kv/kvtest"
	"github.com/sluice-io/sluice/kv/redis"
)

func TestStoreConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	kvtest.Run(t, func(t *testing.T) kvtest.Fixture {
		// One database for all subtests; a prefix of its own keeps each
		// subtest's keys apart.
		prefix := "kvtest/" + t.Name() + "/"
		return kvtest.Fixture{
			Store: redis.New(client, codec.Int64(), redis.Prefix(prefix)),
			PutRaw: func(key string, raw []byte) error {
				return client.Set(context.Background(), prefix+key, raw, 0).Err()
			},
		}
	})
}

func TestStoreConformanceWithoutPrefix(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	kvtest.Run(t, func(t *testing.T) kvtest.Fixture {
		if err := client.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flushdb: %v", err)
		}
		return kvtest.Fixture{
			Store: redis.New(client, codec.Int64()),
			PutRaw: func(key string, raw []byte) error {
				return client.Set(context.Background(), key, raw, 0).Err()
			},
		}
	})
}

func TestValuesAreCodecBytesUnderPrefixedKeys(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	counts := redis.New(client, codec.Int64(), redis.Prefix("word-count/count/"))

	if err := counts.PutMany(ctx, map[string]int64{"kafka": 3, "redis": 1}); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if strings.Join(keys, " ") != "word-count/count/kafka word-count/count/redis" {
		t.Fatalf("keys in redis = %q", keys)
	}
	if got, err := client.Get(ctx, "word-count/count/kafka").Result(); err != nil || got != "3" {
		t.Fatalf("GET word-count/count/kafka = %q, %v; want \"3\"", got, err)
	}

	// Another client changes a counter; the store reads what it wrote.
	if err := client.IncrBy(ctx, "word-count/count/kafka", 4).Err(); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := counts.Get(ctx, "kafka"); err != nil || !ok || v != 7 {
		t.Fatalf("get kafka = %d, %v, %v; want 7", v, ok, err)
	}

	// JSON values are JSON text.
	type user struct{ Clicks int }
	users := redis.New(client, codec.JSON[user](), redis.Prefix("users/"))
	if err := users.Put(ctx, "u1", user{Clicks: 2}); err != nil {
		t.Fatal(err)
	}
	if got, err := client.Get(ctx, "users/u1").Result(); err != nil || got != `{"Clicks":2}` {
		t.Fatalf("GET users/u1 = %q, %v", got, err)
	}
}

func TestStoresWithDifferentPrefixesAreIndependent(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	a := redis.New(client, codec.String(), redis.Prefix("a/"))
	b := redis.New(client, codec.String(), redis.Prefix("b/"))
	if err := a.Put(ctx, "k", "from a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Get(ctx, "k"); err != nil || ok {
		t.Fatalf("b sees a's key: ok=%v err=%v", ok, err)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := a.Get(ctx, "k"); err != nil || !ok || v != "from a" {
		t.Fatalf("a's key after b deleted its own = %q, %v, %v", v, ok, err)
	}
}

// oddCodec cannot encode negative numbers.
type oddCodec struct{ codec.Codec[int64] }

func (c oddCodec) Encode(v int64) ([]byte, error) {
	if v < 0 {
		return nil, fmt.Errorf("negative value %d", v)
	}
	return c.Codec.Encode(v)
}

func TestValueThatCannotBeEncodedWritesNothing(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	s := redis.New[int64](client, oddCodec{codec.Int64()})

	err := s.Put(ctx, "k", -1)
	if err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Fatalf("put of an unencodable value: error %v, want one naming key \"k\"", err)
	}
	err = s.PutMany(ctx, map[string]int64{"a": 1, "b": -2, "c": 3})
	if err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("put many with an unencodable value: error %v, want one naming key \"b\"", err)
	}
	if n, err := client.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("redis holds %d keys after failed writes (err %v), want 0", n, err)
	}
}

func TestUnreachableRedisIsAnErrorForEveryCall(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = client.Close() })
	reg := prometheus.NewRegistry()
	s := redis.New(client, codec.Int64(), redis.Metrics(reg))
	if err := s.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	if _, _, err := s.Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("get: error %v, want one naming the key", err)
	}
	if _, err := s.GetMany(ctx, []string{"k"}); err == nil {
		t.Error("get many: no error")
	}
	if err := s.Put(ctx, "k", 2); err == nil {
		t.Error("put: no error")
	}
	if err := s.PutMany(ctx, map[string]int64{"k": 2}); err == nil {
		t.Error("put many: no error")
	}
	if err := s.Delete(ctx, "k"); err == nil {
		t.Error("delete: no error")
	}
	for _, op := range []string{"get", "get_many", "put_many", "delete"} {
		if n := counter(t, reg, "sluice_kv_operation_errors_total", "redis", op); n != 1 {
			t.Errorf("errors of %s = %v, want 1", op, n)
		}
	}
	if n := counter(t, reg, "sluice_kv_operation_errors_total", "redis", "put"); n != 1 {
		t.Errorf("errors of put = %v, want 1 (the one before the stop succeeded)", n)
	}
	if n := counter(t, reg, "sluice_kv_operations_total", "redis", "put"); n != 2 {
		t.Errorf("calls of put = %v, want 2", n)
	}
}

func TestCancelledContextIsAnError(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s := redis.New(client, codec.Int64())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("get with a cancelled context: %v, want context.Canceled", err)
	}
	if err := s.PutMany(ctx, map[string]int64{"k": 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("put many with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestMetricsCountOperationsErrorsAndDurations(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	reg := prometheus.NewRegistry()
	s := redis.New(client, codec.Int64(), redis.Metrics(reg), redis.Name("counts"))

	// Every operation's series exist before its first call.
	for _, name := range []string{
		"sluice_kv_operations_total",
		"sluice_kv_operation_errors_total",
		"sluice_kv_operation_duration_seconds",
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 5 {
			t.Errorf("%s: %d series (err %v), want one per operation (5)", name, n, err)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Put(ctx, "a", 1))
	must(s.PutMany(ctx, map[string]int64{"b": 2, "c": 3}))
	_, _, err := s.Get(ctx, "a")
	must(err)
	_, _, err = s.Get(ctx, "missing")
	must(err)
	_, err = s.GetMany(ctx, []string{"a", "b", "missing"})
	must(err)
	must(s.Delete(ctx, "c"))
	must(client.Set(ctx, "bad", "not a number", 0).Err())
	if _, _, err := s.Get(ctx, "bad"); err == nil {
		t.Fatal("get of an undecodable value: no error")
	}
	must(s.Flush(ctx))

	want := map[string][2]float64{ // op: calls, errors
		"get":      {3, 1},
		"get_many": {1, 0},
		"put":      {1, 0},
		"put_many": {1, 0},
		"delete":   {1, 0},
	}
	for op, w := range want {
		if n := counter(t, reg, "sluice_kv_operations_total", "counts", op); n != w[0] {
			t.Errorf("calls of %s = %v, want %v", op, n, w[0])
		}
		if n := counter(t, reg, "sluice_kv_operation_errors_total", "counts", op); n != w[1] {
			t.Errorf("errors of %s = %v, want %v", op, n, w[1])
		}
		h := metric(t, reg, "sluice_kv_operation_duration_seconds", "counts", op).GetHistogram()
		if h.GetSampleCount() != uint64(w[0]) {
			t.Errorf("durations of %s: %d samples, want %v", op, h.GetSampleCount(), w[0])
		}
		if h.GetSampleSum() <= 0 {
			t.Errorf("durations of %s sum to %v, want more than 0", op, h.GetSampleSum())
		}
	}
}

func TestStoresShareMetricsOfOneRegistry(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	reg := prometheus.NewRegistry()
	a := redis.New(client, codec.Int64(), redis.Metrics(reg), redis.Name("a"), redis.Prefix("a/"))
	b := redis.New(client, codec.Int64(), redis.Metrics(reg), redis.Name("b"), redis.Prefix("b/"))
	for range 2 {
		if err := a.Put(ctx, "k", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, reg, "sluice_kv_operations_total", "a", "put"); n != 2 {
		t.Errorf("puts of a = %v, want 2", n)
	}
	if n := counter(t, reg, "sluice_kv_operations_total", "b", "put"); n != 1 {
		t.Errorf("puts of b = %v, want 1", n)
	}
}

func TestConflictingMetricLeavesStoreWorking(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_kv_operations_total",
		Help: "Something else under the same name.",
	}))
	s := redis.New(client, codec.Int64(), redis.Metrics(reg))
	if err := s.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "k"); err != nil || !ok || v != 1 {
		t.Fatalf("get = %d, %v, %v", v, ok, err)
	}
}

func TestDecodeErrorOfGetManyNamesKeyWithoutPrefix(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	s := redis.New(client, codec.Int64(), redis.Prefix("p/"))
	keys := make([]string, 2500)
	rows := make(map[string]int64, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		rows[keys[i]] = int64(i)
	}
	if err := s.PutMany(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// In the third MGET of the transaction.
	if err := client.Set(ctx, "p/k2400", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetMany(ctx, keys)
	var de *kv.DecodeError
	if !errors.As(err, &de) || de.Key != "k2400" {
		t.Fatalf("get many: error %v, want a DecodeError of key k2400", err)
	}
}

// metric returns the series of family name with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name, store, op string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["store"] == store && labels["op"] == op {
				return m
			}
		}
	}
	t.Fatalf("no series %s{store=%q,op=%q}", name, store, op)
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name, store, op string) float64 {
	t.Helper()
	return metric(t, reg, name, store, op).GetCounter().GetValue()
}

func TestStoreWithoutClientOrCodecReturnsErrors(t *testing.T) {
	ctx := context.Background()
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	for name, s := range map[string]*redis.Store[int64]{
		"no client": redis.New[int64](nil, codec.Int64()),
		"no codec":  redis.New[int64](client, nil),
	} {
		if _, _, err := s.Get(ctx, "k"); err == nil {
			t.Errorf("%s: get: no error", name)
		}
		if _, err := s.GetMany(ctx, []string{"k"}); err == nil {
			t.Errorf("%s: get many: no error", name)
		}
		if err := s.Put(ctx, "k", 1); err == nil {
			t.Errorf("%s: put: no error", name)
		}
		if err := s.PutMany(ctx, map[string]int64{"k": 1}); err == nil {
			t.Errorf("%s: put many: no error", name)
		}
		if err := s.Delete(ctx, "k"); err == nil {
			t.Errorf("%s: delete: no error", name)
		}
		if err := s.Flush(ctx); err == nil {
			t.Errorf("%s: flush: no error", name)
		}
	}
}

// TestGetManyOfAKeyHoldingAnotherRedisTypeIsAnError: MGET reads a key that
// holds a list, a hash or a set as missing, where GET fails with WRONGTYPE.
// GetMany must fail as Get does, naming the key, rather than report the key
// as having no value, which a handler would then overwrite with PutMany.
func TestGetManyOfAKeyHoldingAnotherRedisTypeIsAnError(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client(t)
	s := redis.New(client, codec.Int64(), redis.Prefix("p/"))
	if err := s.PutMany(ctx, map[string]int64{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	if err := client.RPush(ctx, "p/list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "list"); err == nil {
		t.Fatal("get of a list: no error")
	}
	for _, n := range []int{3, 2500} { // one MGET, and several
		keys := []string{"a", "missing", "b"}
		for i := len(keys); i < n; i++ {
			keys = append(keys, fmt.Sprintf("absent%d", i))
		}
		keys = append(keys, "list", "a")
		got, err := s.GetMany(ctx, keys)
		if err == nil || !strings.Contains(err.Error(), `"list"`) {
			t.Errorf("get many of %d keys, one a list: %v, %v; want an error naming key \"list\"", len(keys), got, err)
		}
		if err != nil && strings.Contains(err.Error(), "p/list") {
			t.Errorf("get many: error %q names the key with its prefix", err)
		}
	}
	// Repeated keys and missing ones are no such error.
	got, err := s.GetMany(ctx, []string{"a", "a", "missing", "b", "missing"})
	if err != nil || len(got) != 2 || got["a"] != 1 || got["b"] != 2 {
		t.Errorf("get many of repeated and missing keys: %v, %v", got, err)
	}
}
