// Package kv is the small key-value interface batch handlers keep their state
// in, as Kasper's handlers keep theirs in Redis.
//
// Three implementations exist: an in-process map (NewMemory), Redis
// (package kv/redis), and the batch group's own changelogged table, which a
// batch handler gets from its BatchContext and which is the only one whose
// writes commit in the same transaction as the batch's outputs and offsets.
//
// Writes may be buffered until Flush. The batch processor calls Flush after
// a handler returns and before it produces the handler's outputs and commits
// the batch's input offsets, so a store is never behind the offsets.
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
