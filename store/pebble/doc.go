// Package pebble keeps the rows of table partitions on local disk in Pebble
// (github.com/cockroachdb/pebble/v2).
//
// A processor opens its stores through a Builder, which keeps all of them in
// one database in its directory, each partition of each table under a key
// prefix of its own, so that they share one memory budget (MemoryBudget,
// 128 MiB by default) however many partitions the processor owns:
//
//	build := pebble.Builder("/var/lib/sluice/clicks", pebble.MemoryBudget(256<<20))
//	s, err := build("clicks-table", 3) // partition 3, in /var/lib/sluice/clicks
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Open opens a store that has a database, and a budget, of its own.
//
// What it guarantees: Apply is atomic; Close makes every Apply durable; after
// a crash a store holds the rows and checkpoint of some earlier Apply as a
// whole, possibly not the last one, so the task catches up from the
// changelog. The write-ahead log is disabled for speed, because the changelog
// already plays its part; see store.go for why that keeps the store.Store
// invariant.
//
// A store with no checkpoint can be filled through BulkLoad (store.BulkLoader),
// which sluice uses to restore a new store from the start of its changelog:
// the loader sorts chunks of changes in memory and has Pebble ingest each as
// a table file, atomically, with its checkpoint, instead of writing every row
// through the memtable; a crash leaves the store at the last chunk ingested.
//
// A directory can be open in only one database at a time, and a table
// partition in only one store of its Builder: opening either again fails
// with an error that names it.
package pebble
