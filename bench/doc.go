// Package bench compares sluice with the raw franz-go client (kgo) doing the
// same work, in the same run, on the same data and the same kind of broker:
// an in-memory embedded broker (broker.Start) on this machine. Machines are
// noisy, so the figure that counts is the ratio sluice/raw, which each
// benchmark prints at its end, for example
//
//	BenchmarkCountGroup: raw 1.58M rec/s [1053 cpu-ns/rec], sluice 0.825M rec/s (ratio 0.52) [1895 cpu-ns/rec]
//
// Each sub-benchmark also reports its rate as rec/s, its ratio to raw as
// ratio, and cpu-ns/rec: the CPU time the whole process (client, embedded
// broker, garbage collector) used during the measured run, per record, which
// other load on the machine disturbs less than it disturbs the rate.
//
// The package holds only benchmarks and the tests that guard them. Run them
// with
//
//	go test -run XXX -bench . -benchtime 1x -timeout 30m ./bench/
//
// Each side then runs once on 1,000,000 records. For a quicker run give a
// smaller size, with a flag or in the environment:
//
//	go test -run XXX -bench . -benchtime 1x ./bench/ -records 200000
//	SLUICE_BENCH_RECORDS=200000 go test -run XXX -bench . -benchtime 1x ./bench/
//
// A sub-benchmark filter runs one side alone (no ratio is printed then), which
// is how to profile it:
//
//	go test -run XXX -bench 'CountGroup/sluice' -benchtime 1x -cpuprofile cpu.out ./bench/
//	go tool pprof -top -cum -tagfocus side=sluice cpu.out
//
// The measured work of each side runs under the pprof label side=<name>, and
// so do the goroutines it starts; the broker's own goroutines and the setup
// that fills the topics are not labelled.
//
// # BenchmarkCountGroup
//
// An input topic of 10 partitions is filled, before the timer starts, with
// the records i = 0..n-1, keyed "key-<i%10000>" and placed by murmur2 (kgo's
// default partitioner), with JSON values of 110 bytes whose fields vary, so
// that they compress about as well as real events. Each side then counts the
// records per key and writes every key's new count, as decimal text, to an
// output topic, and the timer stops once all of it is durable:
//
//   - raw: a kgo consumer group member (cooperative-sticky balancer,
//     autocommit every 100ms) polls, counts in a map[string]int64, produces
//     each new count asynchronously to "raw-counts", and when it has consumed
//     all n records flushes the producer and commits its offsets
//     synchronously.
//   - sluice: a group that persists an int64 per key in Pebble (changelog in
//     "sluice-count-table") and emits each new count to "sluice-counts", run
//     by a Processor with CommitInterval(100ms), the shortest kgo accepts.
//     Its run ends when the offsets the group has committed add up to n,
//     polled every 10ms with kadm; sluice commits an offset only once the
//     table changes and output records of the records below it are
//     acknowledged. Waiting for that commit adds 50ms on average, and makes
//     the sluice time come in steps of about 100ms.
//
// Both include creating their clients and joining the group. Sluice does more
// than raw for each record, on purpose: it also writes the table (the
// changelog topic and Pebble) and commits only acknowledged effects; raw
// commits whatever it polled. Raw uses kgo's defaults for everything the
// above does not name (sluice sets its own fetch wait and producer linger).
// Each side gets a broker of its own, filled with the same records.
//
// # BenchmarkRestore
//
// A compacted topic "bench-table" of 10 partitions is filled with n rows of
// distinct keys "row-<i>" (so compaction cannot shrink it) and values of 16
// bytes. The
// sides read it in turn; none writes it:
//
//   - raw: a kgo direct consumer of every partition from its start, with
//     kgo's default settings, reads until each partition reaches the high
//     watermark that kadm's ListEndOffsets gave at the start.
//   - view-pebble: a sluice View with Storage(pebble.Builder(dir)) on an
//     empty dir, timed from Run to WaitReady returning: a full restore of n
//     rows into fresh Pebble stores (which, at this size, are still in their
//     memtables when WaitReady returns).
//   - view-memory: the same with memory.Builder(), for information.
//   - processor-pebble: a Processor of the group "bench", whose table is
//     "bench-table", started with an empty state dir, as on a new machine.
//     One unprocessed record waits in each partition of its input; the run
//     ends when all of them are handled, which each task can do only after
//     restoring its partition of the table.
//
// Broker compaction is put off during both benchmarks: the embedded broker
// compacts inside its request loop, which would stall whichever side is
// running at the time.
package bench
