// Package pebble keeps the rows of a table partition on local disk in a
// Pebble database (github.com/cockroachdb/pebble/v2), one database per
// partition.
//
// A processor opens its stores through a Builder, which lays them out as
// <dir>/<table>/<partition> and lets them share one block cache:
//
//	build := pebble.Builder("/var/lib/sluice", pebble.CacheSize(256<<20))
//	s, err := build("clicks", 3) // opens /var/lib/sluice/clicks/3
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// What it guarantees: Apply is atomic; Close makes every Apply durable; after
// a crash a store holds the rows and checkpoint of some earlier Apply as a
// whole, possibly not the last one, so the task catches up from the
// changelog. The write-ahead log is disabled for speed, because the changelog
// already plays its part; see store.go for why that keeps the store.Store
// invariant.
//
// A directory can be open in only one store at a time; opening it again in
// the same or another process fails with an error that names it.
package pebble
