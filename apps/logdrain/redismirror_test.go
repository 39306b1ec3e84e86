package logdrain_test

import (
	"context"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/internal/redistest"
	"github.com/sluice-io/sluice/store/pebble"
)

func TestRedisMirrorWritesTheOriginalKeySchemeByteForByte(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	b := startBroker(t)
	stateDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- logdrain.Run(ctx, logdrain.Config{
			Brokers: b.Addrs(), Listen: "127.0.0.1:0", RoutesAddr: "127.0.0.1:0",
			Storage:          pebble.Builder(stateDir),
			Options:          []sluice.Opt{sluice.TopicDefaults(testPartitions, 1)},
			ProcessorOptions: []sluice.ProcessorOpt{sluice.CommitInterval(100 * time.Millisecond)},
			RedisURL:         "redis://" + srv.Addr + "/0",
			RedisInterval:    50 * time.Millisecond,
			Logger:           testLogger(),
			Ready:            func(d, _ net.Addr) { ready <- "http://" + d.String() },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("logdrain stopped with %v", err)
		}
	})
	var drain string
	select {
	case drain = <-ready:
	case err := <-done:
		t.Fatalf("logdrain did not start: %v", err)
	}
	// The spec's example: /foo with connect 5 and 7, service 300 and 200.
	if a := post(t, drain, request{body: body(routerMsg("/foo", 5, 300, 200, "a"), routerMsg("/foo", 7, 200, 404, "b"),
		specRouterMsg, routerMsg("/bar", 1, 2, 500, "c"))}); a.status != 204 {
		t.Fatalf("post: %d %s", a.status, a.body)
	}

	foo, bar := logdrain.RouteDigest("/foo"), logdrain.RouteDigest("/bar")
	seafile := "562994ef7bd49f18068712b14937c3703c9fa2dfee3c014ae4a56e2bc6d0be40"
	if got := logdrain.RouteDigest("/haiwen/seafile"); got != seafile {
		t.Fatalf("digest of /haiwen/seafile %s, want the spec's %s", got, seafile)
	}
	want := map[string]map[string]string{
		"routes":               {"/foo": foo, "/haiwen/seafile": seafile, "/bar": bar},
		foo + "::service":      {"sum": "500", "count": "2", "average": "250.0"},
		foo + "::connect":      {"sum": "12", "count": "2", "average": "6.0"},
		foo + "::statuses":     {"200": "1", "404": "1"},
		seafile + "::service":  {"sum": "166", "count": "1", "average": "166.0"},
		seafile + "::connect":  {"sum": "0", "count": "1", "average": "0.0"},
		seafile + "::statuses": {"200": "1"},
		bar + "::service":      {"sum": "2", "count": "1", "average": "2.0"},
		bar + "::connect":      {"sum": "1", "count": "1", "average": "1.0"},
		bar + "::statuses":     {"500": "1"},
	}
	waitFor(t, "redis to hold the route metrics", func() bool {
		for key, fields := range want {
			got, err := rdb.HGetAll(context.Background(), key).Result()
			if err != nil || !maps.Equal(got, fields) {
				return false
			}
		}
		return true
	})
	for key, fields := range want {
		if got := rdb.HGetAll(context.Background(), key).Val(); !maps.Equal(got, fields) {
			t.Errorf("HGETALL %s = %v, want %v", key, got, fields)
		}
	}
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1+3*3 {
		t.Errorf("redis holds %d keys %v, want routes and three hashes for each of three paths", len(keys), keys)
	}
	if typ := rdb.Type(context.Background(), "routes").Val(); typ != "hash" {
		t.Errorf("routes is a %s, want a hash", typ)
	}
}
