package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
)

// chunk is the most keys sent in one MGET or MSET, so that no single command
// holds Redis, or a reply buffer, for long.
const chunk = 1000

// Store is a kv.Store whose values live in Redis. Make one with New.
type Store[V any] struct {
	client  *goredis.Client
	codec   codec.Codec[V]
	prefix  string
	metrics *metrics
	// err, when set, is returned by every call: the store was made without
	// a client or a codec.
	err error
}

var _ kv.Store[int64] = (*Store[int64])(nil)

// New returns a store of values of type V that client reads and writes in
// Redis, encoded with c. The store does not own client: closing it is the
// caller's business. A store made without a client or a codec returns an
// error from every call.
//
// If Metrics is given and reg holds other metrics under the names the store
// uses, the store works without metrics and the conflict is logged with
// slog's default logger.
func New[V any](client *goredis.Client, c codec.Codec[V], opts ...Option) *Store[V] {
	cfg := config{name: "redis"}
	for _, o := range opts {
		o.apply(&cfg)
	}
	s := &Store[V]{client: client, codec: c, prefix: cfg.prefix}
	if client == nil || c == nil {
		s.err = errors.New("redis: store made without a client or a codec")
	}
	if cfg.reg != nil {
		m, err := newMetrics(cfg.reg, cfg.name)
		if err != nil {
			slog.Warn("kv store has no metrics", "store", cfg.name, "err", err)
		}
		s.metrics = m
	}
	return s
}

// Get returns the value under key; ok is false when Redis has none.
func (s *Store[V]) Get(ctx context.Context, key string) (v V, ok bool, err error) {
	defer s.metrics.done(opGet, time.Now(), &err)
	if s.err != nil {
		return v, false, s.err
	}
	b, err := s.client.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("redis get %q: %w", key, err)
	}
	v, err = s.decode(key, b)
	if err != nil {
		return v, false, err
	}
	return v, true, nil
}

// GetMany returns the values of the keys that Redis has, read at one point in
// time: with one MGET, or with one MGET per 1000 keys, in one transaction.
// MGET reads a key that holds another Redis type (a list, a hash) as
// missing, where GET fails; so that GetMany fails as Get does, the
// transaction also counts the keys that exist with EXISTS, and a key that
// exists without a value read is an error naming it.
func (s *Store[V]) GetMany(ctx context.Context, keys []string) (out map[string]V, err error) {
	defer s.metrics.done(opGetMany, time.Now(), &err)
	if s.err != nil {
		return nil, s.err
	}
	out = make(map[string]V, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var (
		mgets  []*goredis.SliceCmd
		exists []*goredis.IntCmd
	)
	_, err = s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i := 0; i < len(keys); i += chunk {
			part := keys[i:min(i+chunk, len(keys))]
			rkeys := make([]string, len(part))
			for j, k := range part {
				rkeys[j] = s.prefix + k
			}
			mgets = append(mgets, p.MGet(ctx, rkeys...))
			exists = append(exists, p.Exists(ctx, rkeys...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis get many (%d keys): %w", len(keys), err)
	}
	for i, cmd := range mgets {
		part := keys[i*chunk : min((i+1)*chunk, len(keys))]
		vals := cmd.Val()
		if len(vals) != len(part) {
			return nil, fmt.Errorf("redis get many: MGET of %d keys returned %d values", len(part), len(vals))
		}
		var read int64
		for j, raw := range vals {
			if raw == nil {
				continue
			}
			read++
			str, ok := raw.(string)
			if !ok {
				return nil, fmt.Errorf("redis get many: value of key %q is a %T, not a string", part[j], raw)
			}
			v, err := s.decode(part[j], []byte(str))
			if err != nil {
				return nil, err
			}
			out[part[j]] = v
		}
		// EXISTS counts a key named twice twice, as MGET returns its value
		// twice, so the counts differ only by keys of other types.
		if exists[i].Val() > read {
			return nil, s.notStrings(ctx, part, vals)
		}
	}
	return out, nil
}

// notStrings returns the error of a GetMany whose keys part, read as vals,
// hold a value of another Redis type than a string, naming the first such
// key it finds.
func (s *Store[V]) notStrings(ctx context.Context, part []string, vals []any) error {
	var (
		missing []string
		types   []*goredis.StatusCmd
	)
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for j, raw := range vals {
			if raw == nil {
				missing = append(missing, part[j])
				types = append(types, p.Type(ctx, s.prefix+part[j]))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis get many: a key of %d holds a Redis value that is not a string; finding which: %w", len(part), err)
	}
	for j, cmd := range types {
		if t := cmd.Val(); t != "none" && t != "string" {
			return fmt.Errorf("redis get many: key %q holds a Redis %s, not a string value", missing[j], t)
		}
	}
	// The key changed type again since the read.
	return fmt.Errorf("redis get many: a key of %d held a Redis value that is not a string", len(part))
}

// Put sets the value under key.
func (s *Store[V]) Put(ctx context.Context, key string, v V) (err error) {
	defer s.metrics.done(opPut, time.Now(), &err)
	if s.err != nil {
		return s.err
	}
	b, err := s.encode(key, v)
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.prefix+key, b, 0).Err(); err != nil {
		return fmt.Errorf("redis put %q: %w", key, err)
	}
	return nil
}

// PutMany sets all rows in one MULTI/EXEC transaction (one MSET per 1000
// rows), so that other clients see all of them or none. If a value cannot
// be encoded, nothing is written.
func (s *Store[V]) PutMany(ctx context.Context, rows map[string]V) (err error) {
	defer s.metrics.done(opPutMany, time.Now(), &err)
	if s.err != nil {
		return s.err
	}
	if len(rows) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(rows))
	for k, v := range rows {
		b, err := s.encode(k, v)
		if err != nil {
			return err
		}
		args = append(args, s.prefix+k, b)
	}
	_, err = s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i := 0; i < len(args); i += 2 * chunk {
			p.MSet(ctx, args[i:min(i+2*chunk, len(args))]...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis put many (%d rows): %w", len(rows), err)
	}
	return nil
}

// Delete removes key's value; deleting a missing key is not an error.
func (s *Store[V]) Delete(ctx context.Context, key string) (err error) {
	defer s.metrics.done(opDelete, time.Now(), &err)
	if s.err != nil {
		return s.err
	}
	if err := s.client.Del(ctx, s.prefix+key).Err(); err != nil {
		return fmt.Errorf("redis delete %q: %w", key, err)
	}
	return nil
}

// Flush returns nil: every write was sent to Redis when it was made.
func (s *Store[V]) Flush(context.Context) error { return s.err }

func (s *Store[V]) decode(key string, b []byte) (V, error) {
	v, err := s.codec.Decode(b)
	if err != nil {
		var zero V
		return zero, &kv.DecodeError{Key: key, Err: err}
	}
	return v, nil
}

func (s *Store[V]) encode(key string, v V) ([]byte, error) {
	b, err := s.codec.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("redis: encode value of key %q: %w", key, err)
	}
	return b, nil
}
