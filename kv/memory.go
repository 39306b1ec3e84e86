package kv

import (
	"context"
	"sync"
)

// Memory is a Store kept in a map in this process. It is safe for concurrent
// use. Its writes are visible to every later read at once and last as long
// as the Memory does; Flush has nothing to do. Values are kept as given, not
// copied: a value holding a slice or map shares it with the caller.
//
// A Memory suits tests and state that may be lost with the process. The zero
// value is not usable; make one with NewMemory.
type Memory[V any] struct {
	mu   sync.RWMutex
	rows map[string]V
}

var _ Store[int] = (*Memory[int])(nil)

// NewMemory returns an empty Memory.
func NewMemory[V any]() *Memory[V] {
	return &Memory[V]{rows: make(map[string]V)}
}

// Get returns the value under key; ok is false when there is none.
func (m *Memory[V]) Get(_ context.Context, key string) (V, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.rows[key]
	return v, ok, nil
}

// GetMany returns the values of the keys that have one.
func (m *Memory[V]) GetMany(_ context.Context, keys []string) (map[string]V, error) {
	out := make(map[string]V, len(keys))
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, k := range keys {
		if v, ok := m.rows[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// Put sets the value under key.
func (m *Memory[V]) Put(_ context.Context, key string, v V) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[key] = v
	return nil
}

// PutMany sets several values at once: a concurrent reader sees all of them
// or none.
func (m *Memory[V]) PutMany(_ context.Context, rows map[string]V) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range rows {
		m.rows[k] = v
	}
	return nil
}

// Delete removes key's value; deleting a missing key is not an error.
func (m *Memory[V]) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, key)
	return nil
}

// Flush returns nil: a Memory has nothing to write out.
func (m *Memory[V]) Flush(context.Context) error { return nil }

// Len returns the number of keys that have a value.
func (m *Memory[V]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.rows)
}
