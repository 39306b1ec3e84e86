// Package redis keeps a kv.Store in Redis, for state that other programs
// read as it changes (dashboards, redis-cli, other services).
//
//	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	counts := redis.New(client, codec.Int64(), redis.Prefix("word-count/count/"))
//	err := counts.Put(ctx, "kafka", 3) // redis-cli GET word-count/count/kafka → "3"
//
// Values are stored as their codec's bytes, unchanged, so a value written
// with codec.Int64 or codec.JSON is plain text to any Redis client, and a
// counter can be read with GET or changed with INCRBY by others.
//
// What the store guarantees:
//
//   - Writes are sent at once: when Put, PutMany or Delete returns nil, Redis
//     has applied the write. Flush does nothing and returns nil. How long
//     a write survives a Redis crash is Redis's configuration (appendonly,
//     appendfsync, save), not the store's.
//   - PutMany writes all its rows in one MULTI/EXEC transaction: other
//     clients see all of them or none. GetMany reads its keys at one point in
//     time (its MGETs in one transaction), so it never sees half of a
//     PutMany.
//   - A key that holds another Redis type than a string (a list, a hash)
//     is an error naming it, from GetMany as from Get, never a key without
//     a value.
//   - A stored value the codec cannot decode is a *kv.DecodeError naming the
//     key, never a zero value. A value that cannot be encoded is an error and
//     nothing of its call is written.
//   - Redis transactions are not Kafka transactions: under exactly-once
//     processing a batch that is processed again writes its values again.
//     The batch group's own table is the store whose writes commit with the
//     batch's outputs and offsets.
//
// The store is safe for concurrent use, as the go-redis client is.
package redis
