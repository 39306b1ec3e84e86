package sluice

import (
	"context"
	"fmt"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
)

// tableStore is the kv.Store a handler gets for its group's table: the rows
// of the batch's partition, read through the engine's row cache and store,
// written with the batch. Every call holds the batch's lock, so goroutines
// of the handler take turns, and fails once the handler returned.
type tableStore[T any] struct {
	h     *batchHandle
	codec codec.Codec[T]
}

// lock locks the batch and returns its rows.
func (s *tableStore[T]) lock() (*batchCall, batchRows, error) {
	c, err := s.h.lock()
	if err != nil {
		return nil, nil, fmt.Errorf("table of group %s: store %w", s.h.c.group, err)
	}
	if c.rows == nil {
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("group %s has no table: declare one with BatchTable", c.group)
	}
	return c, c.rows, nil
}

// Get returns the row of key in the batch's partition. A row the table's
// codec cannot decode is a *kv.DecodeError, as from every kv.Store.
func (s *tableStore[T]) Get(_ context.Context, key string) (T, bool, error) {
	var zero T
	c, rows, err := s.lock()
	if err != nil {
		return zero, false, err
	}
	defer c.mu.Unlock()
	return s.get(rows, key)
}

func (s *tableStore[T]) get(rows batchRows, key string) (T, bool, error) {
	var zero T
	raw, ok, err := rows.getRaw(key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.codec.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("table of group %s: %w", s.h.c.group, &kv.DecodeError{Key: key, Err: err})
	}
	return v, true, nil
}

// GetMany returns the rows of the keys that have one.
func (s *tableStore[T]) GetMany(_ context.Context, keys []string) (map[string]T, error) {
	c, rows, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	m := make(map[string]T, len(keys))
	for _, k := range keys {
		v, ok, err := s.get(rows, k)
		if err != nil {
			return nil, err
		}
		if ok {
			m[k] = v
		}
	}
	return m, nil
}

// Put sets the row of key; it is written with the batch.
func (s *tableStore[T]) Put(_ context.Context, key string, v T) error {
	raw, err := s.encode(key, v)
	if err != nil {
		return err
	}
	c, rows, err := s.lock()
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	return rows.putRaw(key, raw, true)
}

func (s *tableStore[T]) encode(key string, v T) ([]byte, error) {
	raw, err := s.codec.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("table of group %s: encode row %q: %w", s.h.c.group, key, err)
	}
	return raw, nil
}

// PutMany sets several rows.
func (s *tableStore[T]) PutMany(_ context.Context, rows map[string]T) error {
	raws := make(map[string][]byte, len(rows))
	for k, v := range rows {
		raw, err := s.encode(k, v)
		if err != nil {
			return err
		}
		raws[k] = raw
	}
	c, table, err := s.lock()
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	for k, raw := range raws {
		if err := table.putRaw(k, raw, true); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the row of key; the changelog gets a tombstone.
func (s *tableStore[T]) Delete(_ context.Context, key string) error {
	c, rows, err := s.lock()
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	return rows.putRaw(key, nil, false)
}

// Flush does nothing: the processor writes the table with the batch.
func (s *tableStore[T]) Flush(context.Context) error { return nil }

// failedStore is the store of a handle used with the wrong group: every
// call fails, so the batch fails with the reason.
type failedStore[T any] struct{ err error }

func (s failedStore[T]) Get(context.Context, string) (T, bool, error) {
	var zero T
	return zero, false, s.err
}
func (s failedStore[T]) GetMany(context.Context, []string) (map[string]T, error) { return nil, s.err }
func (s failedStore[T]) Put(context.Context, string, T) error                    { return s.err }
func (s failedStore[T]) PutMany(context.Context, map[string]T) error             { return s.err }
func (s failedStore[T]) Delete(context.Context, string) error                    { return s.err }
func (s failedStore[T]) Flush(context.Context) error                             { return s.err }
