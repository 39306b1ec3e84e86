package logdrain

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/internal/redistest"
)

// stateAt is the state of a path after n requests, each of service 10ms,
// connect 1ms and status 200, and every tenth 500.
func stateAt(n int64) RouteStats {
	s := RouteStats{Requests: n, Service: Timing{Sum: float64(10 * n), Count: n}, Connect: Timing{Sum: float64(n), Count: n},
		Statuses: map[string]int64{"200": n - n/10}}
	if n >= 10 {
		s.Statuses["500"] = n / 10
	}
	return s
}

func TestRedisMirrorNeverMovesAPathBackToAnOlderState(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	newMirror := func() *redisMirror {
		m, err := newRedisMirror("redis://"+srv.Addr, 0, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.close() })
		return m
	}
	// Four mirrors write the states of one path, each in its own random
	// order: the newest wins, whatever the interleaving.
	const states = 200
	var wg sync.WaitGroup
	for w := range 4 {
		m := newMirror()
		order := rand.New(rand.NewPCG(uint64(w), 7)).Perm(states)
		wg.Go(func() {
			for _, i := range order {
				if err := m.write(ctx, "/race", stateAt(int64(i+1))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	d := RouteDigest("/race")
	want := map[string]map[string]string{
		d + "::service":  {"sum": strconv.Itoa(10 * states), "count": strconv.Itoa(states), "average": "10.0"},
		d + "::connect":  {"sum": strconv.Itoa(states), "count": strconv.Itoa(states), "average": "1.0"},
		d + "::statuses": {"200": strconv.Itoa(states - states/10), "500": strconv.Itoa(states / 10)},
	}
	for key, fields := range want {
		got := rdb.HGetAll(ctx, key).Val()
		for f, v := range fields {
			if got[f] != v {
				t.Errorf("HGETALL %s = %v, want %v", key, got, fields)
				break
			}
		}
	}
	// And an older state written alone changes nothing.
	if err := newMirror().write(ctx, "/race", stateAt(3)); err != nil {
		t.Fatal(err)
	}
	if got := rdb.HGet(ctx, d+"::service", "count").Val(); got != strconv.Itoa(states) {
		t.Errorf("after an older state, service count %s, want %d", got, states)
	}
}

func TestFormatNumberWritesAveragesWithAFraction(t *testing.T) {
	for _, c := range []struct {
		f        float64
		fraction bool
		want     string
	}{{6, true, "6.0"}, {250, true, "250.0"}, {216.16666666666666, true, "216.16666666666666"}, {500, false, "500"}, {12.5, false, "12.5"}, {0, true, "0.0"}} {
		if got := formatNumber(c.f, c.fraction); got != c.want {
			t.Errorf("formatNumber(%v, %v) = %q, want %q", c.f, c.fraction, got, c.want)
		}
	}
}
