package kv

import "context"

// Store keeps values of type V under string keys.
type Store[V any] interface {
	// Get returns the value under key; ok is false when there is none.
	Get(ctx context.Context, key string) (v V, ok bool, err error)
	// GetMany returns the values of the keys that have one; keys without a
	// value are absent from the map.
	GetMany(ctx context.Context, keys []string) (map[string]V, error)
	// Put sets the value under key.
	Put(ctx context.Context, key string, v V) error
	// PutMany sets several values at once.
	PutMany(ctx context.Context, rows map[string]V) error
	// Delete removes key's value; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Flush makes every write made so far durable.
	Flush(ctx context.Context) error
}
