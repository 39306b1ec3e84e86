package logdrain

// The Redis mirror of the route metrics, in the key scheme of the drain
// this one replaces, so that its dashboards keep working:
//
//	HSET routes <path> <sha256hex(path)>
//	HSET <digest>::service sum <ms> count <n> average <ms, with a fraction>
//	HSET <digest>::connect sum <ms> count <n> average <ms, with a fraction>
//	HSET <digest>::statuses <status> <n> …
//
// The original incremented the sums and counts and then read them back to
// write the average, so two drains could interleave and leave an average
// that matched neither. Here the mirror copies the route metrics table as
// the routes view reads it, committed rows only, and writes each changed
// path's whole state in one Lua script: Redis runs it atomically, so the
// three hashes of a path always agree. The script refuses a state older
// than the one Redis holds (one of its counts is lower), so that two
// mirrors, or a mirror that resumes behind another, never move a path
// back. A Redis that is down holds nothing up: the table keeps the
// metrics, and the mirror writes what changed once Redis answers again.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-io/sluice"
)

// RedisRoutesKey is the hash of every path and its digest.
const RedisRoutesKey = "routes"

// mirrorScript writes one path's state unless Redis holds a newer one.
// KEYS: routes, <digest>::service, <digest>::connect, <digest>::statuses.
// ARGV: path, digest, then sum, count and average of service and of
// connect ("" for a timing without values), then status, count pairs.
var mirrorScript = goredis.NewScript(`
local function behind(key, field, n)
  local cur = redis.call('HGET', key, field)
  return cur and n ~= '' and tonumber(cur) > tonumber(n)
end
if behind(KEYS[2], 'count', ARGV[4]) or behind(KEYS[3], 'count', ARGV[7]) then
  return 0
end
for i = 9, #ARGV, 2 do
  if behind(KEYS[4], ARGV[i], ARGV[i + 1]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'sum', ARGV[3], 'count', ARGV[4], 'average', ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[3], 'sum', ARGV[6], 'count', ARGV[7], 'average', ARGV[8])
end
if #ARGV >= 10 then
  redis.call('HSET', KEYS[4], unpack(ARGV, 9))
end
return 1
`)

// RouteDigest returns the key prefix of path's hashes in Redis: the hex
// SHA-256 of the path.
func RouteDigest(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:])
}

// redisMirror copies the route metrics table to Redis.
type redisMirror struct {
	client   goredis.UniversalClient
	interval time.Duration
	logger   *slog.Logger
	written  map[string]int64 // path → Requests of the state last written
	errors   atomic.Int64
	writes   atomic.Int64
}

// newRedisMirror connects to the Redis of url (redis:// or rediss://).
func newRedisMirror(url string, interval time.Duration, logger *slog.Logger) (*redisMirror, error) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis mirror: %w", err)
	}
	if interval <= 0 {
		interval = time.Second
	}
	return &redisMirror{client: goredis.NewClient(opts), interval: interval, logger: logger, written: map[string]int64{}}, nil
}

func (m *redisMirror) close() error { return m.client.Close() }

// register exposes the mirror's counts.
func (m *redisMirror) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "logdrain_redis_mirror_writes_total",
			Help: "Paths whose route metrics the mirror wrote to Redis.",
		}, func() float64 { return float64(m.writes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "logdrain_redis_mirror_errors_total",
			Help: "Mirror passes that failed to write to Redis; the next pass writes again.",
		}, func() float64 { return float64(m.errors.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("redis mirror: metrics: %w", err)
		}
	}
	return nil
}

// run mirrors v's table every interval until ctx is done.
func (m *redisMirror) run(ctx context.Context, v *RoutesView) error {
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if v.table.State() != sluice.ViewRunning {
			continue
		}
		if err := m.sync(ctx, v); err != nil && ctx.Err() == nil {
			m.errors.Add(1)
			m.logger.Warn("mirror route metrics to redis", "err", err)
		}
	}
}

// sync writes the paths whose state changed since it last wrote them.
func (m *redisMirror) sync(ctx context.Context, v *RoutesView) error {
	var changed []string
	states := map[string]RouteStats{}
	if err := v.table.Iterate("", "", func(path string, s RouteStats) bool {
		if s.Requests != m.written[path] {
			changed = append(changed, path)
			states[path] = s
		}
		return true
	}); err != nil {
		return fmt.Errorf("read route metrics: %w", err)
	}
	for _, path := range changed {
		s := states[path]
		if err := m.write(ctx, path, s); err != nil {
			return err
		}
		m.written[path] = s.Requests
		m.writes.Add(1)
	}
	return nil
}

// write writes the state s of path, unless Redis holds a newer one.
func (m *redisMirror) write(ctx context.Context, path string, s RouteStats) error {
	d := RouteDigest(path)
	keys := []string{RedisRoutesKey, d + "::service", d + "::connect", d + "::statuses"}
	args := []any{path, d}
	args = append(args, timingArgs(s.Service)...)
	args = append(args, timingArgs(s.Connect)...)
	codes := make([]string, 0, len(s.Statuses))
	for code := range s.Statuses {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		args = append(args, code, strconv.FormatInt(s.Statuses[code], 10))
	}
	if err := mirrorScript.Run(ctx, m.client, keys, args...).Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("write %q to redis: %w", path, err)
	}
	return nil
}

// timingArgs are a timing's sum, count and average as the script takes
// them: empty for a timing without values, which writes no hash.
func timingArgs(t Timing) []any {
	if t.Count == 0 {
		return []any{"", "", ""}
	}
	return []any{formatNumber(t.Sum, false), strconv.FormatInt(t.Count, 10), formatNumber(t.Average(), true)}
}

// formatNumber writes f as the original did: the shortest decimal that
// reads back as f, with ".0" added to a whole average ("6.0") and a whole
// sum written as an integer ("500").
func formatNumber(f float64, fraction bool) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if fraction && !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
