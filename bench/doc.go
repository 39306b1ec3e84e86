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
// Before each side runs, the heap is collected and returned to the OS
// (debug.FreeOSMemory), so that every side pays for faulting in the pages
// it uses rather than running on those an earlier side left mapped.
//
// Broker compaction is put off during both benchmarks: the embedded broker
// compacts inside its request loop, which would stall whichever side is
// running at the time.
//
// # BenchmarkCountGroupExactlyOnce
//
// BenchmarkCountGroup exactly once: the same input, the same counting and
// output, with every record's effects committed in Kafka transactions:
//
//   - raw: a kgo.GroupTransactSession (transactional ID, cooperative-sticky
//     balancer, FetchIsolationLevel(ReadCommitted)) begins a transaction,
//     polls, counts, produces each new count with an aborting first-error
//     promise, and ends the transaction with End(ctx, TryCommit) 100ms after
//     its first record (its polls are cut short to keep to that), or at once
//     after the n-th record. The open transaction's counts are kept apart
//     from the committed ones and dropped when End returns committed=false,
//     as the session then rewinds to the last committed offsets, so that its
//     counts stay exact when a transaction aborts (the smoke test aborts
//     every other one). Its run ends when the transaction holding the n-th
//     record has committed.
//   - sluice: BenchmarkCountGroup's processor with Guarantee(ExactlyOnce) and
//     the default CommitInterval, 100ms exactly once: every interval the
//     tasks write their batches into the processor's transaction, which
//     commits with the offsets polled. Its run ends when the group's
//     committed offsets add up to n, as in BenchmarkCountGroup; offsets
//     committed in a transaction count only once it has committed.
//
// After each run a reader of committed records must find exactly n records
// in the side's output topic (its end offset also counts commit markers and
// aborted records).
//
// # BenchmarkMemory
//
// The peak resident memory (VmHWM) of each side, with one processor owning
// 10, 50 and 100 partitions. Every side runs in a child process of its own
// (this test binary, TestMemoryChild) against a broker in the parent, so
// neither the broker's memory nor the other side's counts. Two workloads,
// each on a fresh broker per partition count:
//
//   - count: BenchmarkCountGroup's raw and sluice sides over n records in
//     an input topic of that many partitions; the sluice table in Pebble.
//   - restore: the raw side of BenchmarkRestore, and a processor of its
//     group that restores the table of n distinct rows into an empty state
//     dir and handles the one record in each input partition.
//
// Reported: raw-MiB, sluice-MiB, their ratio, and sluice-outside-go-MiB:
// the child samples its resident memory every 20ms and, at the highest
// sample, how much of it the Go runtime did not hold, which with cgo is
// Pebble's memtables and block cache. What the Go heap holds at the peak:
//
//	SLUICE_BENCH_MEM_HEAPPROFILE=/tmp/heap.pprof go test -run XXX -bench 'Memory$/count/partitions=10$' -benchtime 1x ./bench/
//	go tool pprof -sample_index=inuse_space -top /tmp/heap.pprof
//
// The sluice child writes its heap profile there each time its resident
// memory reaches a new high (5% above the last it wrote), the raw child to
// the same name with ".raw" appended.
//
// BenchmarkMemoryStores runs a child process that, with no Kafka, writes 64
// Apply calls of 1,000 distinct rows of 100-byte values (8 MiB) into each of
// 10, 50 and 100 partitions of a table through one pebble.Builder, and
// reports its peak (peak-MiB) and the part outside the Go heap: what the
// stores of a processor take when every partition writes more than a
// memtable holds.
//
// # BenchmarkRestartWithTable
//
// How long a processor holding a table of n rows in Pebble takes, from Run,
// to process new records again. The table is BenchmarkRestore's, the
// processor is of its group, with its stores in a state dir. First, untimed,
// a processor restores the whole table into an empty state dir, holds it for
// a second, its state dir is copied while it runs (each store's manifest
// first, then its table files) and it stops gracefully. Each sub-benchmark
// then times one restart, until a new record in every one of the 10 input
// partitions is handled (ms-all, also ns/op; ms-first for the first of
// them), and reports the table rows restored from the changelog
// (rows-replayed):
//
//   - clean: from the state dir the graceful stop left.
//   - crash-copy: from the copy taken while the processor ran, which holds
//     what Pebble would recover after a crash: with its write-ahead log
//     disabled, only what it had flushed from its memtables.
//   - fresh: from an empty state dir.
//   - sigkill: a child process (this test binary) restores the table into
//     an empty state dir and is killed with SIGKILL a second later; the
//     restart starts from what it left, and the group must first drop the
//     killed member, which it does only once the member's session times
//     out.
//   - sigkill-instance: as sigkill, but the child runs exactly once with
//     InstanceID("bench-restart") and a CommitInterval of an hour, and its
//     handler writes each record it handles to the table, so that it dies
//     with a transaction open on the changelog. The restart runs exactly
//     once with the same InstanceID: it takes the killed member's place in
//     the group at once, and fences the open transaction, which a restore
//     would otherwise wait for until the transaction timeout (10s) ends it.
//     It handles the child's records again (their transaction never
//     committed) before the new ones; each partition counts as handled at
//     its first record.
//
// Only the crash-copy and sigkill sides differ from a clean restart in what
// the state dir holds; all but the sigkill sides follow a member that left
// the group.
//
// # BenchmarkWordCount
//
// Kasper's word count. An input topic of 10 partitions is filled with n
// words, each keyed by itself and placed by murmur2, drawn from a
// vocabulary of 10,000 by Zipf's law (s = 1.07), as words occur in text.
// Each side splits every value on white space, counts each word and writes
// "<word> has been seen <N> times", N being the count before, keyed by the
// word, to an output topic:
//
//   - raw: a kgo consumer group member like the raw side of
//     BenchmarkCountGroup, counting in a map[string]int64.
//   - sluice: the counting group of apps/wordcount (wordcount.DefineCount)
//     with its counts in its table (Pebble, changelog
//     "sluice-wordcount-table"), run by a BatchProcessor with
//     BatchSize(1000), BatchWait(100ms) and CommitInterval(100ms). A batch
//     reads its words' counts with one GetMany, writes them back with one
//     PutMany, and sends the texts; the processor produces them and one
//     changelog record per word changed, waits for all of them, applies the
//     counts to Pebble and marks the batch's offsets. Its run ends when the
//     committed offsets add up to n. It also reports the 99th percentile of
//     its batches' latency (from a batch closing to its effects being
//     acknowledged, from the sluice_batch_duration_seconds histogram of
//     Metrics, on for this side) as p99-batch-ms.
//
// # BenchmarkAdTrackAttribution
//
// The attribution of apps/adtrack. A topic "clicks" of 10 partitions is
// filled with n/2 clicks (~560 bytes in the tracker format), each with a
// device id and keyed by its lookup key, then "inapp" with n/2 installs
// (~150 bytes), install i from click i's device, keyed by its identity:
//
//   - raw: a kgo consumer group member of both topics that parses every
//     record as a tracker event (adtrack.ParseEvent) and commits.
//   - sluice: a processor of adtrack.DefineAttribution with its table in
//     Pebble and CommitInterval(100ms). A click is stored in its key's row;
//     an install is remembered in the row of its identity and sends one
//     loopback record to its first key, which consumes the click and
//     writes a conversion (an install handled before its click walks all
//     four keys and is written as unattributed). Its run ends when every
//     install has its conversion or unattributed record; the run logs how
//     many were attributed.
//
// The raw side does a small part of the work, so the ratio is the cost of
// the attribution against reading its input, not a like-for-like
// comparison.
//
// # BenchmarkSteady
//
// The count group under steady load instead of a backlog: records arrive
// at a fixed rate, in small fetches. For each offered rate (-steady-rates
// or $SLUICE_BENCH_STEADY_RATES, default 50000,100000,300000 records a
// second) and each side, in turn, a fresh broker in this process, a
// producer in this process (no linger) that writes BenchmarkCountGroup's
// records at that rate, each stamped with the time it is handed to the
// client in the header "produced-at", and a reader of committed records of
// the side's output topic. The side runs in a child process of its own
// (this test binary, TestSteadyChild), so that its CPU time is its alone:
//
//   - raw: rawCount's consumer group member, counting in a map and
//     producing every new count with the input's headers, without producer
//     linger (as sluice's client), committing every 100ms.
//   - at-least-once: the count group's processor (table in Pebble), whose
//     handler emits every count with the input's headers; default
//     CommitInterval (1s), which does not delay outputs.
//   - exactly-once: the same with Guarantee(ExactlyOnce) and the default
//     CommitInterval (100ms): outputs are visible when their transaction
//     commits.
//   - exactly-once-20ms: the same with CommitInterval(20ms).
//
// A run waits until the side has answered records of every partition, then
// offers the rate for a 2s warm-up and the measured window
// (-steady-duration or $SLUICE_BENCH_STEADY_DURATION, default 10s), and
// waits up to 5s after it for the outputs of the window's records.
// Reported per side and rate: in-rec/s and out-rec/s (records produced,
// and outputs read, during the window: the producer cannot offer more than
// the broker takes), the latency from producing an input to reading its
// output, of the records produced in the window (p50, p90, p99, p99.9 and
// max, by a DDSketch of 1% relative accuracy with an exact max), late-rec
// (records of the window whose output had not arrived 5s after it), the
// child's CPU time during the window per output read (cpu-ns/rec) and over
// the window (cores), the transactions it committed a second (txn/s,
// exactly once), and, for sluice, its ratios to raw at the same rate.
// A Markdown table of all of it is printed at the end. Broker, producer and
// reader share this process, and the broker serves requests one at a time,
// so at the overload rate the broker may be what saturates first.
//
// The rate "half" stands for half the raw side's maximum throughput on the
// machine at hand. After the fixed rates, the raw side's output at the
// highest of them is taken if it did not keep up there (the producer could
// not offer the rate, or outputs fell behind); else the raw side alone is
// offered 300000 records a second, then twice as many as long as it keeps
// up (up to 2.4M). Half that output is offered to every side, as the
// sub-benchmark rate=half; the table shows the rate it came to. Run it with
//
//	go test -run XXX -bench Steady -benchtime 1x -timeout 30m ./bench/
//	go test -run XXX -bench 'Steady/rate=50000' -benchtime 1x ./bench/ -steady-duration 3s
//	go test -run XXX -bench Steady -benchtime 1x ./bench/ -steady-rates half
//
// -test.cpuprofile and -test.memprofile are passed on to each child, with
// the side's name added to the file name (cpu.out.at-least-once):
//
//	go test -c -o /tmp/bench.test ./bench/
//	/tmp/bench.test -test.run XXX -test.bench 'Steady/rate=50000/(raw|at-least-once)$' -test.benchtime 1x \
//	  -steady-rates 50000 -test.cpuprofile /tmp/cpu.out -test.memprofile /tmp/mem.out
//	go tool pprof -top -cum /tmp/bench.test /tmp/cpu.out.at-least-once
//
// TestSteadySidesAnswerEveryRecord runs each side for a second at 2,000
// records a second and checks that every record of the window was
// answered and measured.
//
// # BenchmarkExport
//
// apps/export. An input topic of 10 partitions is filled with n counter
// updates of 50,000 stats keys, update i of key i%50000 at event time
// 2016-01-04 11:00 + i·40s/n, so four 10 s buckets and, at 1M updates, five
// updates per key per bucket. Each side keeps each key's latest value per
// bucket and makes one event of it:
//
//   - raw: a kgo consumer group member like the raw side of
//     BenchmarkCountGroup, keeping the latest values in a map; once it has
//     consumed and committed all n, it marshals every event to JSON.
//   - sluice: export.Run with a sink that accepts every call and counts its
//     events: tumbling windows in the table (Pebble), a pending row and a
//     timer per event, calls within Firehose's limits, IdleAdvance(100ms)
//     so that the last bucket closes once the input is read. Its run ends
//     when the sink has the events of every key and bucket.
//   - sluice-topic: export.Run to a Kafka topic: the same windows, the
//     events written with the batches, no pending rows. Its run ends when
//     the topic holds every event.

package bench
