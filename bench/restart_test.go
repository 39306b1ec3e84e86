package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// crashSettle is how long the processor that builds the table runs, idle,
// after it has restored it and before its state is copied: long enough for
// the flushes that the restore started to finish, as they would have long
// before a crash of a processor that had been running for a while.
const crashSettle = time.Second

// restart is what one restart of a processor found.
type restart struct {
	first, all time.Duration // from Run to the first and to the last new record handled
	replayed   int64         // table rows restored from the changelog
}

// restartInstance is the InstanceID of the processors of the
// sigkill-instance side.
const restartInstance = "bench-restart"

// restartMode is how a processor of the restart benchmark runs.
type restartMode struct {
	// instance, if set, makes the processor run exactly once as the
	// static member instance, whose transactional ID is the same on every
	// run.
	instance string
	// holdTxn makes the handler write its record to the table, in a
	// transaction that stays open: what a processor killed in the middle
	// of a transaction leaves on the changelog. Exactly once only.
	holdTxn bool
}

// restartProcessor starts a processor of the group whose table is the
// pre-filled table, with its stores in stateDir, and returns once it has
// handled a record in every input partition, which each task does only
// once its store holds its partition of the table, with what that took and
// a function that stops the processor gracefully.
func restartProcessor(ctx context.Context, addrs []string, stateDir string, mode restartMode) (restart, func() error, error) {
	began := time.Now()
	var (
		seen    atomic.Uint64 // a bit per partition handled
		first   atomic.Int64  // nanoseconds from began
		handled = make(chan struct{})
		log     = &restoreLog{}
	)
	const all = 1<<partitions - 1
	g := sluice.DefineGroup[[]byte](restoreGroup)
	sluice.Persist(g, codec.Bytes())
	sluice.Input(g, restoreInput, codec.Bytes(), func(ctx *sluice.Context[[]byte], v []byte) error {
		if mode.holdTxn {
			ctx.SetValue(v)
		}
		bit := uint64(1) << ctx.Partition()
		for {
			old := seen.Load()
			if old&bit != 0 {
				return nil
			}
			if seen.CompareAndSwap(old, old|bit) {
				if old == 0 {
					first.Store(int64(time.Since(began)))
				}
				if old|bit == all {
					close(handled)
				}
				return nil
			}
		}
	})
	opts := []sluice.ProcessorOpt{
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
		sluice.Logger(slog.New(log)),
	}
	if mode.instance != "" {
		opts = append(opts, sluice.Guarantee(sluice.ExactlyOnce), sluice.InstanceID(mode.instance))
	}
	if mode.holdTxn {
		opts = append(opts, sluice.CommitInterval(time.Hour))
	}
	p, err := sluice.NewProcessor(g, opts...)
	if err != nil {
		return restart{}, nil, err
	}
	run := start(p.Run)
	select {
	case <-handled:
		all := time.Since(began)
		return restart{first: time.Duration(first.Load()), all: all, replayed: log.restored.Load()}, run.stop, nil
	case <-run.done:
		return restart{}, nil, fmt.Errorf("processor stopped with partitions %010b handled: %v", seen.Load(), run.err)
	case <-ctx.Done():
		return restart{}, nil, fmt.Errorf("processor handled partitions %010b of %d: %w", seen.Load(), partitions, errors.Join(ctx.Err(), run.stop()))
	}
}

// restoreLog is a log handler that adds up the rows a processor's table
// reader reports it restored ("restored", records=N, once per partition
// that needed restoring) and drops everything else.
type restoreLog struct{ restored atomic.Int64 }

func (h *restoreLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *restoreLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "restored" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "records" {
				h.restored.Add(a.Value.Int64())
			}
			return true
		})
	}
	return nil
}

func (h *restoreLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *restoreLog) WithGroup(string) slog.Handler      { return h }

// copyStateDir copies the Pebble databases under src, which a running
// processor may be writing, to dst, as a crash would leave them: each
// database's manifest and its markers first, then its table files, which are
// written whole before a manifest names them and never changed after, so
// that every file the copied manifest names is copied whole. A file that a
// compaction deletes meanwhile makes the store's copy start again.
func copyStateDir(src, dst string) error {
	var stores []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "MANIFEST-") && !slices.Contains(stores, filepath.Dir(path)) {
			stores = append(stores, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(stores) == 0 {
		return fmt.Errorf("no Pebble store under %s", src)
	}
	for _, store := range stores {
		rel, err := filepath.Rel(src, store)
		if err != nil {
			return err
		}
		for try := 1; ; try++ {
			err := copyStore(store, filepath.Join(dst, rel))
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrNotExist) || try == 10 {
				return fmt.Errorf("copy store %s: %w", store, err)
			}
		}
	}
	return nil
}

// copyStore copies the files of one Pebble store, metadata first.
func copyStore(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	meta := func(name string) bool {
		return strings.HasPrefix(name, "marker.") || strings.HasPrefix(name, "MANIFEST-") ||
			strings.HasPrefix(name, "OPTIONS-") || name == "CURRENT"
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && meta(e.Name()) {
			names = append(names, e.Name())
		}
	}
	for _, e := range entries {
		if !e.IsDir() && !meta(e.Name()) {
			names = append(names, e.Name())
		}
	}
	for _, name := range names {
		if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// checkpointedRows returns how many rows of the table the stores under
// stateDir account for: the sum of their checkpoints, each the offset after
// the last changelog record it holds (the table has no transactions, so
// that is a row count).
func checkpointedRows(stateDir string) (int64, error) {
	var sum int64
	open := pebble.Builder(stateDir)
	for p := range int32(partitions) {
		st, err := open(tableTopic, p)
		if err != nil {
			return 0, err
		}
		off, err := st.Offset()
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
		sum += max(off, 0)
	}
	return sum, nil
}

// restartSides are the sub-benchmarks of BenchmarkRestartWithTable, in the
// order they run: each prepares, untimed, the state dir a restart starts
// from, given the dir a processor left at a clean stop (built) and a copy of
// it taken while the processor ran (crashed), and restarts in its mode.
var restartSides = []struct {
	name     string
	stateDir func(tb testing.TB, br *broker.Broker, built, crashed string) string
	mode     restartMode
}{
	{"clean", func(_ testing.TB, _ *broker.Broker, built, _ string) string { return built }, restartMode{}},
	{"crash-copy", func(tb testing.TB, _ *broker.Broker, _, crashed string) string {
		dir := tb.TempDir()
		if err := copyStateDir(crashed, dir); err != nil {
			tb.Fatal(err)
		}
		return dir
	}, restartMode{}},
	{"fresh", func(tb testing.TB, _ *broker.Broker, _, _ string) string { return tb.TempDir() }, restartMode{}},
	{"sigkill", func(tb testing.TB, br *broker.Broker, _, _ string) string {
		dir := tb.TempDir()
		sigkillState(tb, br, dir, "")
		return dir
	}, restartMode{}},
	{"sigkill-instance", func(tb testing.TB, br *broker.Broker, _, _ string) string {
		dir := tb.TempDir()
		sigkillState(tb, br, dir, restartInstance)
		return dir
	}, restartMode{instance: restartInstance}},
}

// BenchmarkRestartWithTable measures how long a processor holding a table
// of n rows in Pebble takes, from Run, to process new records again after a
// clean stop, after a crash (emulated with a copy of its state dir, and for
// real with SIGKILL) and with no state at all. See the package
// documentation.
func BenchmarkRestartWithTable(b *testing.B) {
	n := benchRecords(b)
	br := startBroker(b)
	fillTable(b, br, n)
	built, crashed := b.TempDir(), b.TempDir()
	buildState(b, br, built, crashed)

	type outcome struct {
		name string
		restart
	}
	var outcomes []outcome
	for _, side := range restartSides {
		b.Run(side.name, func(b *testing.B) {
			b.StopTimer()
			var sum restart
			for range b.N {
				dir := side.stateDir(b, br, built, crashed)
				produceOnePerPartition(b, br, restoreInput)
				ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
				var (
					r    restart
					stop func() error
					err  error
				)
				b.StartTimer()
				pprof.Do(ctx, pprof.Labels("side", side.name), func(ctx context.Context) {
					r, stop, err = restartProcessor(ctx, br.Addrs(), dir, side.mode)
				})
				b.StopTimer()
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				if err := stop(); err != nil {
					b.Fatal(err)
				}
				sum.first += r.first
				sum.all += r.all
				sum.replayed += r.replayed
			}
			avg := restart{first: sum.first / time.Duration(b.N), all: sum.all / time.Duration(b.N), replayed: sum.replayed / int64(b.N)}
			b.ReportMetric(float64(avg.first.Microseconds())/1000, "ms-first")
			b.ReportMetric(float64(avg.all.Microseconds())/1000, "ms-all")
			b.ReportMetric(float64(avg.replayed), "rows-replayed")
			outcomes = append(outcomes, outcome{side.name, avg})
		})
	}
	if len(outcomes) == 0 {
		return
	}
	line := fmt.Sprintf("%s (%d rows):", b.Name(), n)
	for i, o := range outcomes {
		if i > 0 {
			line += ","
		}
		line += fmt.Sprintf(" %s first %v all %v (%d rows replayed)", o.name,
			o.first.Round(time.Millisecond), o.all.Round(time.Millisecond), o.replayed)
	}
	fmt.Println(line)
}

// buildState runs a processor that restores the whole table into Pebble
// under built, copies its state to crashed while it runs, as a crash would
// leave it, and stops it gracefully, which leaves built as a clean stop
// does. It logs how much of the table each holds.
func buildState(b testing.TB, br *broker.Broker, built, crashed string) {
	b.Helper()
	produceOnePerPartition(b, br, restoreInput)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	r, stop, err := restartProcessor(ctx, br.Addrs(), built, restartMode{})
	if err != nil {
		b.Fatalf("build the table: %v", err)
	}
	time.Sleep(crashSettle)
	copyErr := copyStateDir(built, crashed)
	if err := errors.Join(copyErr, stop()); err != nil {
		b.Fatalf("build the table: %v", err)
	}
	rows, err := checkpointedRows(built)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built the table in %v (%d rows restored); clean state holds %d rows", r.all.Round(time.Millisecond), r.replayed, rows)
	// The copy is opened only in a copy of it, so that every crash-copy
	// restart starts from the same files.
	probe := b.TempDir()
	if err := copyStateDir(crashed, probe); err != nil {
		b.Fatal(err)
	}
	if rows, err = checkpointedRows(probe); err != nil {
		b.Fatalf("crash copy: %v", err)
	}
	b.Logf("crash copy holds %d rows", rows)
}

// Environment of the child process that sigkillState starts.
const (
	childBrokersEnv = "SLUICE_BENCH_CHILD_BROKERS"
	childStateEnv   = "SLUICE_BENCH_CHILD_STATE"
	// With an InstanceID, the child runs exactly once as that instance
	// and is killed in the middle of a transaction.
	childInstanceEnv = "SLUICE_BENCH_CHILD_INSTANCE"
	childReady       = "child ready"
)

// TestRestartChild is the child process of BenchmarkRestartWithTable's
// sigkill and sigkill-instance sides, which start it: it restores the table
// into a processor's state dir, handles a record of every partition, says so
// on its standard output and runs until killed. Run otherwise, it skips.
func TestRestartChild(t *testing.T) {
	addrs := os.Getenv(childBrokersEnv)
	if addrs == "" {
		t.Skip("the child process of BenchmarkRestartWithTable/sigkill")
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	mode := restartMode{instance: os.Getenv(childInstanceEnv)}
	mode.holdTxn = mode.instance != ""
	if _, _, err := restartProcessor(ctx, strings.Split(addrs, ","), os.Getenv(childStateEnv), mode); err != nil {
		t.Fatal(err)
	}
	fmt.Println(childReady)
	<-ctx.Done() // killed long before
	t.Fatal("not killed")
}

// sigkillState runs, in a child process, a processor that restores the
// table into stateDir, and kills it with SIGKILL once it has held the table
// for crashSettle: its stores and its membership of the group are left as a
// crash leaves them. With an instance, the child runs exactly once as that
// static member, and the rows its handler wrote are in a transaction still
// open when it dies.
func sigkillState(tb testing.TB, br *broker.Broker, stateDir, instance string) {
	tb.Helper()
	produceOnePerPartition(tb, br, restoreInput)
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestRestartChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childBrokersEnv+"="+strings.Join(br.Addrs(), ","), childStateEnv+"="+stateDir, childInstanceEnv+"="+instance)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		var said []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == childReady {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
			said = append(said, sc.Text())
		}
		ready <- fmt.Errorf("child process ended before it was ready (%v); it said:\n%s", sc.Err(), strings.Join(said, "\n"))
	}()
	select {
	case err = <-ready:
	case <-time.After(runTimeout):
		err = errors.New("child process not ready in time")
	}
	if err == nil {
		time.Sleep(crashSettle)
	}
	_ = cmd.Process.Kill() // SIGKILL
	_ = cmd.Wait()
	if err != nil {
		tb.Fatal(err)
	}
}
