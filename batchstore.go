package sluice

import (
	"context"
	"fmt"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
)

// tableStore is the kv.Store a handler gets for its group's table: the rows
// of the batch's partition, read through the engine's row cache and store,
// written with the batch.
type tableStore[T any] struct {
	c     *batchCall
	codec codec.Codec[T]
}

func (s *tableStore[T]) rows() (batchRows, error) {
	if s.c.rows == nil {
		return nil, fmt.Errorf("group %s has no table: declare one with BatchTable", s.c.group)
	}
	return s.c.rows, nil
}

// Get returns the row of key in the batch's partition. A row the table's
// codec cannot decode is a *kv.DecodeError, as from every kv.Store.
func (s *tableStore[T]) Get(_ context.Context, key string) (T, bool, error) {
	var zero T
	rows, err := s.rows()
	if err != nil {
		return zero, false, err
	}
	raw, ok, err := rows.getRaw(key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.codec.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("table of group %s: %w", s.c.group, &kv.DecodeError{Key: key, Err: err})
	}
	return v, true, nil
}

// GetMany returns the rows of the keys that have one.
func (s *tableStore[T]) GetMany(ctx context.Context, keys []string) (map[string]T, error) {
	m := make(map[string]T, len(keys))
	for _, k := range keys {
		v, ok, err := s.Get(ctx, k)
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
	rows, err := s.rows()
	if err != nil {
		return err
	}
	raw, err := s.codec.Encode(v)
	if err != nil {
		return fmt.Errorf("table of group %s: encode row %q: %w", s.c.group, key, err)
	}
	return rows.putRaw(key, raw, true)
}

// PutMany sets several rows.
func (s *tableStore[T]) PutMany(ctx context.Context, rows map[string]T) error {
	for k, v := range rows {
		if err := s.Put(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the row of key; the changelog gets a tombstone.
func (s *tableStore[T]) Delete(_ context.Context, key string) error {
	rows, err := s.rows()
	if err != nil {
		return err
	}
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
