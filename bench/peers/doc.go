// Command peers runs the count group of sluice's BenchmarkCountGroup, and
// the restore of BenchmarkRestore, with sluice, the raw franz-go client and
// goka, side by side in one run, against the same embedded broker (sluice's
// broker package) on the same data. It is a module of its own, so that
// goka, Sarama and LevelDB never enter sluice's module; `go test ./...` at
// the repository root does not build it.
//
// Run it from this directory:
//
//	go run . -records 1000000 -runs 2
//
// -sides picks sides by name, -v passes the children's standard error
// through. `go test .` here runs every side once on 3,000 records.
//
// goka (github.com/lovoo/goka v1.1.16, its latest release) comes from the
// module proxy. Where the proxy does not serve it, point the module at a
// checkout of that tag before running:
//
//	go mod edit -replace github.com/lovoo/goka=/path/to/goka
//	go mod tidy
//
// Each round runs every side once, each in a child process of its own (this
// program with -child), so that its CPU time (getrusage of the child, user
// plus system) and its peak resident memory (VmHWM) are its own; the broker
// and the producer that fills it run in the parent. Every other round runs
// the sides in reverse order. At the end it prints a Markdown table of every
// round, each side's ratios to the raw client of the same round, and
// sluice's ratios to goka.
//
// # Count group
//
// For each side a fresh broker is filled, before the side starts, with the
// n records of BenchmarkCountGroup (10 partitions, 10,000 keys, JSON values
// of 110 bytes, placed by murmur2). The side counts the records per key and
// writes each key's new count, as decimal text, to an output topic of its
// own. Every side commits its offsets every 100ms. The time runs from
// starting the child until the side's group has committed the offsets of
// all n records (polled by the parent every 10ms), or, for raw, until it
// reports that it has consumed n records, flushed its outputs and
// committed. The parent then checks that the output holds n records.
//
//   - raw: a kgo consumer group member (cooperative-sticky) that counts in a
//     map and produces each count asynchronously.
//   - sluice: a group with an int64 table in Pebble, run by a Processor with
//     CommitInterval(100ms): sluice commits an offset only after the table
//     changes and outputs below it are acknowledged.
//   - goka-leveldb: a goka processor (goka v1.1.16, Sarama) whose group
//     table, an int64 per key, is in goka's default storage, LevelDB, under
//     the child's state dir; goka creates the table topic itself.
//   - goka-memory: the same with goka's memory storage.
//
// goka runs with its defaults (DefaultConfig: Sarama protocol version 2.0.0,
// snappy, producer flushes every 100ms or 64 KiB, its copartitioning
// balancer), except that it reads the input from its oldest offset (goka
// starts streams at the newest by default), commits every 100ms (Sarama's
// default is 1s), and creates its topics with replication factor 1 (goka's
// default of 2 is more than a broker of one node has).
//
// # Restore
//
// One broker holds the compacted table of BenchmarkRestore: n rows of
// distinct keys and 16-byte values in 10 partitions. Each side, in turn,
// restores all of it into an empty store, timed from starting the child to
// the side being ready, and then checks that it holds n rows:
//
//   - restore-raw: a kgo direct consumer reading every partition to its end.
//   - restore-sluice-pebble, restore-sluice-memory: a sluice View with
//     pebble.Builder or memory.Builder, until WaitReady returns.
//   - restore-goka-leveldb: a goka View with its default LevelDB storage,
//     until it is running, which it is once every partition has recovered.
//   - restore-goka-memory, run only when named with -sides: the same with
//     goka's memory storage, which sorts all of a partition's keys whenever
//     a new key arrives, so that the time per row grows with the table
//     (about 75,000 rows a second at 20,000 rows, 8,700 at 300,000; at
//     1,000,000 it had not finished after three and a half minutes).
//
// Compaction of the broker is put off throughout, as in sluice's bench
// package.
package main
