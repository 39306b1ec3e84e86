package bench

// BenchmarkMemory measures peak resident memory, which a process cannot
// measure of itself once other work ran in it: every side runs in a child
// process of its own (TestMemoryChild) against a broker in this process, and
// reports the VmHWM of /proc/self/status when it is done. The broker's
// memory therefore counts on neither side.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// Environment of the child process of BenchmarkMemory.
const (
	memSideEnv       = "SLUICE_BENCH_MEM_SIDE"
	memBrokersEnv    = "SLUICE_BENCH_MEM_BROKERS"
	memRecordsEnv    = "SLUICE_BENCH_MEM_RECORDS"
	memPartitionsEnv = "SLUICE_BENCH_MEM_PARTITIONS"
	memStateEnv      = "SLUICE_BENCH_MEM_STATE"
	// memHeapProfileEnv, when set in the environment of the benchmark,
	// names a file the sluice child writes a heap profile to each time its
	// resident memory reaches a new high, 5% above the last one written:
	// what the Go heap holds at the peak. The raw child writes it to the
	// same name with ".raw" appended.
	memHeapProfileEnv = "SLUICE_BENCH_MEM_HEAPPROFILE"
	// memPeakPrefix starts the line on which the child reports its peak
	// resident memory, in KiB.
	memPeakPrefix = "peak-rss-kib "
	// memOutsideGoPrefix starts the line on which it reports, in KiB, how
	// much of its highest sampled resident memory the Go runtime did not
	// hold: with cgo, Pebble's memtables and block cache.
	memOutsideGoPrefix = "outside-go-kib "
)

// memPartitionCounts are the partition counts BenchmarkMemory runs with: a
// single processor owns all of them.
var memPartitionCounts = []int{10, 50, 100}

// memWorkloads are the workloads of BenchmarkMemory: fill prepares a fresh
// broker for both sides, and the sides are the names TestMemoryChild runs.
var memWorkloads = []struct {
	name   string
	fill   func(tb testing.TB, br *broker.Broker, n, parts int)
	raw    string
	sluice string
}{
	{name: "count", fill: fillMemoryCount, raw: "raw-count", sluice: "sluice-count"},
	{name: "restore", fill: fillMemoryRestore, raw: "raw-restore", sluice: "sluice-restore"},
}

// BenchmarkMemory compares the peak resident memory (VmHWM) of the raw
// franz-go client and of one sluice processor doing the count group's work
// and restoring a table of n rows, with 10, 50 and 100 partitions. See the
// package documentation.
func BenchmarkMemory(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skipf("peak resident memory is read from /proc: %v", err)
	}
	n := benchRecords(b)
	for _, w := range memWorkloads {
		for _, parts := range memPartitionCounts {
			b.Run(fmt.Sprintf("%s/partitions=%d", w.name, parts), func(b *testing.B) {
				var raw, sl, outside int64
				for range b.N {
					br := startBroker(b)
					w.fill(b, br, n, parts)
					raw, _ = runMemoryChild(b, br, w.raw, n, parts)
					sl, outside = runMemoryChild(b, br, w.sluice, n, parts)
					_ = br.Close()
				}
				b.ReportMetric(float64(raw)/1024, "raw-MiB")
				b.ReportMetric(float64(sl)/1024, "sluice-MiB")
				b.ReportMetric(float64(outside)/1024, "sluice-outside-go-MiB")
				b.ReportMetric(float64(sl)/float64(raw), "ratio")
				b.Logf("%s, %d partitions: raw %d MiB, sluice %d MiB (%d MiB outside the Go heap), ratio %.2f",
					w.name, parts, raw>>10, sl>>10, outside>>10, float64(sl)/float64(raw))
			})
		}
	}
}

// BenchmarkMemoryStores measures the peak resident memory (VmHWM) of a
// process that writes 8 MiB of distinct rows into each of 10, 50 and 100
// partitions of a table through one pebble.Builder, with no Kafka: the part
// of a processor's memory that its stores take when every partition writes
// more than a memtable holds. See the package documentation.
func BenchmarkMemoryStores(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skipf("peak resident memory is read from /proc: %v", err)
	}
	for _, parts := range memPartitionCounts {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			var peak, outside int64
			for range b.N {
				peak, outside = runMemoryChild(b, nil, "stores", 0, parts)
			}
			b.ReportMetric(float64(peak)/1024, "peak-MiB")
			b.ReportMetric(float64(outside)/1024, "outside-go-MiB")
			b.Logf("stores, %d partitions: peak %d MiB (%d MiB outside the Go heap)", parts, peak>>10, outside>>10)
		})
	}
}

// writeStores writes 64 Apply calls of 1,000 distinct rows of 100-byte
// values (8 MiB of rows) into each of parts partitions of a table kept by
// a pebble.Builder in dir, partition after partition in every round, as
// tasks do, and closes the stores.
func writeStores(dir string, parts int) error {
	build := pebble.Builder(dir)
	stores := make([]store.Store, parts)
	for p := range stores {
		s, err := build("memory-table", int32(p))
		if err != nil {
			return err
		}
		defer s.Close()
		stores[p] = s
	}
	value := make([]byte, 100)
	changes := make([]store.Change, 1000)
	for round := range 64 {
		for p, s := range stores {
			for i := range changes {
				changes[i] = store.Change{Key: fmt.Appendf(nil, "row-%d-%d-%d", p, round, i), Value: value}
			}
			if err := s.Apply(changes, int64(round)); err != nil {
				return err
			}
		}
	}
	return nil
}

// fillMemoryCount creates the count group's topics with parts partitions
// and writes n input records.
func fillMemoryCount(tb testing.TB, br *broker.Broker, n, parts int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	for _, t := range []string{inputTopic, rawOutput, sluiceOutput} {
		createTopicWith(tb, cl, t, parts, false)
	}
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: inputTopic, Key: inputKey(i), Value: inputValue(i)}
	})
}

// fillMemoryRestore creates the compacted table with n distinct rows and the
// processor's input with one record in each of its parts partitions.
func fillMemoryRestore(tb testing.TB, br *broker.Broker, n, parts int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	createTopicWith(tb, cl, tableTopic, parts, true)
	createTopicWith(tb, cl, restoreInput, parts, false)
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: tableTopic, Key: tableKey(i), Value: tableValue(i)}
	})
	manual := newClient(tb, br, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer manual.Close()
	produceAll(tb, manual, parts, func(i int) *kgo.Record {
		return &kgo.Record{Topic: restoreInput, Partition: int32(i), Key: []byte("wake-" + strconv.Itoa(i)), Value: []byte("x")}
	})
}

// createTopicWith creates topic with parts partitions, compacted if asked.
func createTopicWith(tb testing.TB, cl *kgo.Client, topic string, parts int, compacted bool) {
	tb.Helper()
	var configs map[string]*string
	if compacted {
		configs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(parts), 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
}

// runMemoryChild runs side in a child process against br, if not nil, and returns its
// peak resident memory, and the part of its highest sample that the Go
// runtime did not hold, in KiB.
func runMemoryChild(tb testing.TB, br *broker.Broker, side string, n, parts int) (peak, outsideGo int64) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestMemoryChild$", "-test.count=1", "-test.v")
	var addrs []string
	if br != nil {
		addrs = br.Addrs()
	}
	cmd.Env = append(os.Environ(),
		memSideEnv+"="+side,
		memBrokersEnv+"="+strings.Join(addrs, ","),
		memRecordsEnv+"="+strconv.Itoa(n),
		memPartitionsEnv+"="+strconv.Itoa(parts),
		memStateEnv+"="+tb.TempDir(),
	)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s: child process: %v; it said:\n%s", side, err, out)
	}
	found := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		for _, prefix := range []string{memPeakPrefix, memOutsideGoPrefix} {
			if s, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				kib, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					tb.Fatalf("%s: %s%q: %v", side, prefix, s, err)
				}
				found[prefix] = kib
			}
		}
	}
	if len(found) != 2 {
		tb.Fatalf("%s: child process did not report its memory; it said:\n%s", side, out)
	}
	return found[memPeakPrefix], found[memOutsideGoPrefix]
}

// TestMemoryChild is the child process of BenchmarkMemory, which starts it:
// it runs one side to its end and prints its peak resident memory. Run
// otherwise, it skips.
func TestMemoryChild(t *testing.T) {
	side := os.Getenv(memSideEnv)
	if side == "" {
		t.Skip("the child process of BenchmarkMemory")
	}
	addrs := strings.Split(os.Getenv(memBrokersEnv), ",")
	n, err := strconv.Atoi(os.Getenv(memRecordsEnv))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := strconv.Atoi(os.Getenv(memPartitionsEnv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	profile := os.Getenv(memHeapProfileEnv)
	if profile != "" && strings.HasPrefix(side, "raw-") {
		profile += ".raw"
	}
	peak := sampleMemory(profile)
	switch side {
	case "raw-count":
		var stop func()
		if stop, err = rawCount(ctx, addrs, n); err == nil {
			stop()
		}
	case "sluice-count":
		var stop func() error
		if stop, err = sluiceCount(ctx, addrs, os.Getenv(memStateEnv), n, sluice.TopicDefaults(int32(parts), 1)); err == nil {
			err = stop()
		}
	case "raw-restore":
		var rows int64
		if rows, err = rawRestore(ctx, addrs); err == nil && rows != int64(n) {
			err = fmt.Errorf("read %d rows, want %d", rows, n)
		}
	case "sluice-restore":
		err = memoryRestore(ctx, addrs, os.Getenv(memStateEnv), parts)
	case "stores":
		err = writeStores(os.Getenv(memStateEnv), parts)
	default:
		err = fmt.Errorf("unknown side %q", side)
	}
	if err != nil {
		t.Fatal(err)
	}
	kib, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	rss, goSys := peak()
	fmt.Printf("%s%d\n", memPeakPrefix, kib)
	fmt.Printf("%s%d\n", memOutsideGoPrefix, (rss-min(rss, goSys))>>10)
}

// memoryRestore starts a processor of a group whose table is the pre-filled
// table, with an empty state dir, and returns once it has handled the
// record in each of the parts partitions of its input, which each task does
// only after restoring its partition of the table; then it stops the
// processor.
func memoryRestore(ctx context.Context, addrs []string, stateDir string, parts int) error {
	handled := make(chan struct{})
	var calls atomic.Int64
	g := sluice.DefineGroup[[]byte](restoreGroup)
	sluice.Persist(g, codec.Bytes())
	sluice.Input(g, restoreInput, codec.Bytes(), func(*sluice.Context[[]byte], []byte) error {
		if calls.Add(1) == int64(parts) {
			close(handled)
		}
		return nil
	})
	p, err := sluice.NewProcessor(g,
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(int32(parts), 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
	)
	if err != nil {
		return err
	}
	run := start(p.Run)
	select {
	case <-handled:
		return run.stop()
	case <-run.done:
		return fmt.Errorf("processor stopped after %d records: %v", calls.Load(), run.err)
	case <-ctx.Done():
		return fmt.Errorf("processor handled %d of %d records: %w", calls.Load(), parts, errors.Join(ctx.Err(), run.stop()))
	}
}

// sampleMemory samples the resident memory every 20ms, and returns a
// function that returns the highest sample and the memory the Go runtime
// held then; the rest is memory allocated outside it (Pebble's memtables
// and block cache, in C when cgo is on). If profile is not empty, it writes
// a heap profile there at each new high 5% above the last it wrote.
func sampleMemory(profile string) func() (rss, goSys uint64) {
	var mu sync.Mutex
	var maxRSS, maxGo, profiled uint64
	go func() {
		for range time.Tick(20 * time.Millisecond) {
			b, err := os.ReadFile("/proc/self/statm")
			if err != nil {
				return
			}
			f := strings.Fields(string(b))
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			rss := pages * uint64(os.Getpagesize())
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			if rss > maxRSS {
				maxRSS, maxGo = rss, ms.Sys-ms.HeapReleased
			}
			mu.Unlock()
			if profile != "" && rss > profiled+profiled/20 {
				profiled = rss
				writeHeapProfile(profile)
			}
		}
	}()
	return func() (uint64, uint64) {
		mu.Lock()
		defer mu.Unlock()
		return maxRSS, maxGo
	}
}

// writeHeapProfile writes the heap profile of the last garbage collection
// to path, replacing what was there.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("heap").WriteTo(f, 0)
}

// peakRSS returns the peak resident memory of this process in KiB: VmHWM in
// /proc/self/status.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
