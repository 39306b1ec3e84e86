//go:build unix

package sluice_test

// The scale-out test runs one exactly-once count group in separate
// operating-system processes over one embedded broker, and takes it from one
// member to three and back to one while records flow: the table is built by
// the first member, two more start and take partitions from it, then stop
// gracefully (or are SIGKILLed) and give them back. At the end the read-committed output (one
// record per input record, the key's new count) and the table (read by a
// view) must both hold exactly what was produced: every key's outputs are
// its counts 1, 2, …, n, each once, and its row is n.
//
// For each move of a partition it reports the time from the revocation (the
// old owner's "partitions released", or the SIGKILL of the old owner) to the
// new owner's first processed record of the partition, taken from the
// processes' logs: each worker logs the first record it processes in a
// partition after each assignment of it.
//
// The short form (a table of 1,000 rows, 500 records a second) runs with the
// other tests, in about 50 s with -race, most of it the killing
// configurations' wait for the session and transaction timeouts. The long
// form builds a 1,000,000-row table first; run it without the race
// detector:
//
//	go test -count=1 -run TestScaleOut -scaleout.long -v -timeout 30m .
//
// scaleConfigs lists the configurations, each the processor options it adds
// to every worker and whether it scales in by stopping or killing: without
// and with a standby replica of every partition (Standbys(1)).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

var scaleLong = flag.Bool("scaleout.long", false, "run the scale-out test in its long form, a 1,000,000-row table (give -timeout 30m, no -race)")

// scaleConfig is one configuration the scale-out test runs the group in.
type scaleConfig struct {
	name string
	// opts are added to the options of every worker of the run.
	opts []sluice.ProcessorOpt
	// kill makes the group go from three members back to one by
	// SIGKILLing two, not stopping them: their partitions move once the
	// session timeout has passed, and their open transactions are
	// aborted when the transaction timeout has.
	kill bool
}

// scaleConfigs are the configurations TestScaleOut runs, in turn.
var scaleConfigs = []scaleConfig{
	{name: "no-standbys"},
	{name: "no-standbys-kill", kill: true},
	{name: "standbys", opts: []sluice.ProcessorOpt{sluice.Standbys(1)}},
	{name: "standbys-kill", opts: []sluice.ProcessorOpt{sluice.Standbys(1)}, kill: true},
	// The transaction timeout no longer than the session timeout: a killed
	// member's open transactions are aborted by the time its partitions
	// move, and the new owners' restores need not wait for them.
	{name: "standbys-kill-txn6s", opts: []sluice.ProcessorOpt{sluice.Standbys(1), sluice.KafkaOptions(kgo.TransactionTimeout(6 * time.Second))}, kill: true},
}

// What TestScaleOut tells a worker process; scaleEnvWorker, the worker's
// name, is what makes TestScaleOutWorker run.
const (
	scaleEnvWorker  = "SLUICE_SCALEOUT_WORKER"
	scaleEnvBrokers = "SLUICE_SCALEOUT_BROKERS"
	scaleEnvState   = "SLUICE_SCALEOUT_STATE"
	scaleEnvLog     = "SLUICE_SCALEOUT_LOG"
	scaleEnvConfig  = "SLUICE_SCALEOUT_CONFIG"
)

const (
	scalePartitions = 6
	scaleGroup      = "scaleout"
	scaleInput      = "scaleout-in"
	scaleOutput     = "scaleout-out"
)

// scaleForm is the size of a scale-out run.
type scaleForm struct {
	rows int // distinct keys, each produced once before the run
	rate int // records a second produced while the group scales
	// settle bounds each step: the initial table being built, and each
	// scaling until every moved partition is processed again.
	settle time.Duration
}

func scaleOutForm() scaleForm {
	if *scaleLong {
		return scaleForm{rows: 1_000_000, rate: 2000, settle: 10 * time.Minute}
	}
	return scaleForm{rows: 1000, rate: 500, settle: 30 * time.Second}
}

// scaleGroupDef counts the records of each key, and emits every new count.
func scaleGroupDef() *sluice.Group[counter] {
	g := sluice.DefineGroup[counter](scaleGroup)
	sluice.Persist(g, codec.JSON[counter]())
	out := sluice.Output(g, scaleOutput, codec.String())
	var fresh [scalePartitions]atomic.Bool
	scaleFresh = fresh[:]
	sluice.Input(g, scaleInput, codec.String(), func(ctx *sluice.Context[counter], _ string) error {
		if p := ctx.Partition(); fresh[p].CompareAndSwap(true, false) {
			scaleLogger.Info("first record", "partition", p, "offset", ctx.Offset())
		}
		c, _ := ctx.Value()
		c.Count++
		ctx.SetValue(c)
		return out.Emit(ctx, ctx.Key(), strconv.FormatInt(c.Count, 10))
	})
	return g
}

// In a worker process: its logger, and for each partition whether it was
// assigned since the last record processed in it.
var (
	scaleLogger *slog.Logger
	scaleFresh  []atomic.Bool
)

// assignWatch is the worker's log handler. It marks the partitions of every
// "partitions assigned" the processor logs as fresh, before the processor
// starts their tasks, so that the first record of each is logged.
type assignWatch struct{ slog.Handler }

func (h assignWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "partitions assigned" {
		r.Attrs(func(a slog.Attr) bool {
			if ps, ok := a.Value.Any().([]int32); ok && a.Key == "partitions" {
				for _, p := range ps {
					scaleFresh[p].Store(true)
				}
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h assignWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return assignWatch{h.Handler.WithAttrs(as)}
}

func (h assignWatch) WithGroup(name string) slog.Handler {
	return assignWatch{h.Handler.WithGroup(name)}
}

// TestScaleOutWorker is a processor process of TestScaleOut. It is skipped
// unless TestScaleOut started it.
func TestScaleOutWorker(t *testing.T) {
	name := os.Getenv(scaleEnvWorker)
	if name == "" {
		t.Skip("a worker process of TestScaleOut; runs only when TestScaleOut starts it")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	f, err := os.OpenFile(os.Getenv(scaleEnvLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := scaleGroupDef()
	scaleLogger = slog.New(assignWatch{slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("worker", name)
	// EOF on stdin means the test is gone: a worker must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		scaleLogger.Error("test process gone; exiting")
		os.Exit(3)
	}()
	i := slices.IndexFunc(scaleConfigs, func(c scaleConfig) bool { return c.name == os.Getenv(scaleEnvConfig) })
	if i < 0 {
		t.Fatalf("no scale-out configuration %q", os.Getenv(scaleEnvConfig))
	}
	opts := append([]sluice.ProcessorOpt{
		sluice.Brokers(os.Getenv(scaleEnvBrokers)),
		sluice.Storage(pebble.Builder(os.Getenv(scaleEnvState))),
		sluice.TopicDefaults(scalePartitions, 1),
		sluice.Guarantee(sluice.ExactlyOnce),
		sluice.Logger(scaleLogger),
		// As the chaos test's workers: a deployment's tuning of the
		// defaults' tens of seconds.
		sluice.SessionTimeout(6 * time.Second),
		sluice.KafkaOptions(
			kgo.HeartbeatInterval(500*time.Millisecond),
			kgo.RebalanceTimeout(10*time.Second),
			kgo.TransactionTimeout(10*time.Second),
		),
	}, scaleConfigs[i].opts...)
	p, err := sluice.NewProcessor(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	go reportRunning(ctx, p)
	scaleLogger.Info("worker started", "pid", os.Getpid())
	err = p.Run(ctx)
	scaleLogger.Info("worker stopped", "err", err, "stats", fmt.Sprintf("%+v", p.Stats()))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
}

// reportRunning logs, from the processor's Stats, each partition that has
// become running, with the changelog records it restored.
func reportRunning(ctx context.Context, p *sluice.Processor[counter]) {
	running := make(map[int32]bool)
	for ctx.Err() == nil {
		now := make(map[int32]bool)
		for _, s := range p.Stats().Partitions {
			if s.State != "running" {
				continue
			}
			now[s.Partition] = true
			if !running[s.Partition] {
				scaleLogger.Info("partition running", "partition", s.Partition, "restored", s.Restored)
			}
		}
		running = now
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestScaleOutOneToThreeToOneCountsEveryRecordOnce(t *testing.T) {
	for _, cfg := range scaleConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			runScaleOut(t, cfg, scaleOutForm())
		})
	}
}

func runScaleOut(t *testing.T, cfg scaleConfig, form scaleForm) {
	began := time.Now()
	b := startBroker(t)
	addr := strings.Join(b.Addrs(), ",")
	adm := kadm.NewClient(mustClient(t, kgo.SeedBrokers(b.Addrs()...)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := adm.CreateTopic(ctx, scalePartitions, 1, nil, scaleInput); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &scaleCluster{t: t, dir: dir, addr: addr, cfg: cfg.name}
	t.Cleanup(s.dumpOnFailure)
	t.Cleanup(s.killAll)

	// The table: every key once.
	pr := newScaleProducer(t, b.Addrs(), form.rows)
	for i := range form.rows {
		pr.produce(ctx, i)
	}
	if err := pr.flush(ctx); err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	a := s.start("a")
	s.waitDrained(ctx, adm, form.settle, "the first worker built the table")
	built := time.Since(loaded)

	flowing := make(chan error, 1)
	fctx, stopFlow := context.WithCancel(ctx)
	defer stopFlow()
	go func() { flowing <- pr.flow(fctx, form.rate) }()
	// Records flow, and are processed, before the group scales.
	s.waitCommitted(ctx, adm, form.settle, "the first worker processes records as they come", int64(form.rows+form.rate/2))

	upAt := time.Now()
	bw, cw := s.start("b"), s.start("c")
	s.waitFirstRecords(form.settle, upAt, "the group scaled to three", map[string]int{"a": 1, "b": 1, "c": 1})
	up := time.Since(upAt)
	// The three process a few seconds of records, so that the rows of
	// the partitions moved back have changed since they left.
	s.waitCommitted(ctx, adm, form.settle, "the three workers process records", s.committedNow(ctx, adm)+int64(2*form.rate))

	downAt := time.Now()
	var wg sync.WaitGroup
	for _, w := range []*scaleWorker{bw, cw} {
		if cfg.kill {
			s.kill(w)
			continue
		}
		wg.Go(func() { s.stop(w, time.Minute) })
	}
	s.waitFirstRecords(form.settle, downAt, "the group scaled back to one", map[string]int{"a": scalePartitions})
	down := time.Since(downAt)
	wg.Wait()

	stopFlow()
	if err := <-flowing; err != nil {
		t.Fatalf("produce: %v", err)
	}
	s.waitDrained(ctx, adm, form.settle, "the last records were processed")
	s.stop(a, time.Minute)

	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	for _, topic := range []string{scaleOutput, scaleGroup + "-table"} {
		if err := waitNoOpenTransactions(wctx, adm, topic); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	want := pr.counts()
	s.checkOutput(ctx, b.Addrs(), want)
	got, err := readTable(ctx, scaleGroup+"-table", []sluice.Opt{sluice.Brokers(b.Addrs()...), sluice.Logger(testLogger())})
	if err != nil {
		t.Fatalf("read table: %v", err)
	}
	var diffs []string
	for _, k := range slices.Sorted(keysOf(want, got)) {
		if got[k] != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s: %d, want %d", k, got[k], want[k]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("table: %d of %d keys differ; the first: %s", len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 10)], "; "))
	}
	s.checkWorkerOutput()

	moves := s.moves()
	figures := fmt.Sprintf("scaleout %s: rows=%d records=%d rate=%d table-built=%v 1→3=%v 3→1=%v %s duration=%v",
		cfg.name, form.rows, pr.n, form.rate, built.Round(10*time.Millisecond), up.Round(10*time.Millisecond),
		down.Round(10*time.Millisecond), summarizeMoves(moves, upAt, downAt), time.Since(began).Round(100*time.Millisecond))
	t.Log(figures)
	fmt.Println(figures)
	for _, m := range moves {
		t.Logf("partition %d: %s → %s, revocation to first record %v (assigned after %v, restored %d records in %v)",
			m.partition, m.from, m.to, m.took.Round(time.Millisecond), m.assignedAfter.Round(time.Millisecond), m.restored, m.restoreTook)
	}
}

// scaleProducer writes the input: record i of the table is key i, each
// record after the table a key drawn at random.
type scaleProducer struct {
	cl   *kgo.Client
	rows int
	rng  *rand.Rand

	mu     sync.Mutex
	n      int              // records produced
	perKey map[string]int64 // records produced per key
	err    error
}

func newScaleProducer(t *testing.T, addrs []string, rows int) *scaleProducer {
	cl := mustClient(t, kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(scaleInput),
		kgo.MaxBufferedRecords(100_000))
	return &scaleProducer{cl: cl, rows: rows, rng: rand.New(rand.NewPCG(1, 2)), perKey: make(map[string]int64)}
}

func scaleKey(i int) string { return fmt.Sprintf("key-%07d", i) }

// produce writes one record of key i. The client is idempotent and the
// broker is not restarted: a record acknowledged is in the topic once, and
// any failure fails the test.
func (p *scaleProducer) produce(ctx context.Context, i int) {
	k := scaleKey(i)
	p.cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: []byte(k)}, func(_ *kgo.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			if p.err == nil {
				p.err = fmt.Errorf("record of %s: %w", k, err)
			}
			return
		}
		p.n++
		p.perKey[k]++
	})
}

func (p *scaleProducer) flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// flow produces rate records a second until ctx is done, then flushes.
// The records are produced without ctx, which would fail those buffered
// when it is done.
func (p *scaleProducer) flow(ctx context.Context, rate int) error {
	began := time.Now()
	sent := 0
	for ctx.Err() == nil {
		for due := int(float64(rate) * time.Since(began).Seconds()); sent < due; sent++ {
			p.produce(context.WithoutCancel(ctx), p.rng.IntN(p.rows))
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.flush(fctx)
}

func (p *scaleProducer) counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.perKey
}

// scaleCluster is the worker processes of one run.
type scaleCluster struct {
	t    *testing.T
	dir  string
	addr string
	cfg  string

	mu      sync.Mutex
	workers []*scaleWorker
}

type scaleWorker struct {
	name          string
	log, out      string
	cmd           *exec.Cmd
	stdin         *os.File
	done          chan struct{}
	err           error
	stopRequested bool
	killedAt      time.Time // zero unless the test SIGKILLed it
}

// start starts a worker process with a fresh state dir.
func (s *scaleCluster) start(name string) *scaleWorker {
	s.t.Helper()
	w := &scaleWorker{
		name: name,
		log:  filepath.Join(s.dir, "worker-"+name+".log"),
		out:  filepath.Join(s.dir, "worker-"+name+".out"),
		done: make(chan struct{}),
		cmd:  exec.Command(os.Args[0], "-test.run=^TestScaleOutWorker$", "-test.count=1", "-test.timeout=0"),
	}
	out, err := os.Create(w.out)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	r, stdin, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Close()
	w.cmd.Env = append(os.Environ(),
		scaleEnvWorker+"="+name,
		scaleEnvBrokers+"="+s.addr,
		scaleEnvState+"="+filepath.Join(s.dir, "state-"+name),
		scaleEnvLog+"="+w.log,
		scaleEnvConfig+"="+s.cfg,
	)
	w.cmd.Stdin, w.cmd.Stdout, w.cmd.Stderr = r, out, out
	if err := w.cmd.Start(); err != nil {
		_ = stdin.Close()
		s.t.Fatalf("worker %s: %v", name, err)
	}
	w.stdin = stdin
	go func() {
		w.err = w.cmd.Wait()
		_ = w.stdin.Close()
		close(w.done)
	}()
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	return w
}

// stop stops w gracefully, once it has installed its signal handler, and
// fails the test if it does not exit cleanly within timeout.
func (s *scaleCluster) stop(w *scaleWorker, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !logHas(w.log, `"msg":"worker started"`) && time.Now().Before(deadline) {
		select {
		case <-w.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.mu.Lock()
	w.stopRequested = true
	s.mu.Unlock()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		if w.err != nil {
			s.t.Errorf("worker %s: graceful stop: %v", w.name, w.err)
		}
	case <-time.After(time.Until(deadline)):
		_ = w.cmd.Process.Signal(syscall.SIGQUIT)
		s.t.Errorf("worker %s did not stop within %v of SIGTERM", w.name, timeout)
	}
}

// kill SIGKILLs w and waits until it is gone.
func (s *scaleCluster) kill(w *scaleWorker) {
	s.mu.Lock()
	w.stopRequested, w.killedAt = true, time.Now()
	s.mu.Unlock()
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

func (s *scaleCluster) killAll() {
	s.mu.Lock()
	ws := slices.Clone(s.workers)
	s.mu.Unlock()
	for _, w := range ws {
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		<-w.done
	}
}

// exited fails the test if a worker exited without being stopped.
func (s *scaleCluster) exited() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		select {
		case <-w.done:
			if !w.stopRequested {
				return fmt.Errorf("worker %s exited on its own: %v", w.name, w.err)
			}
		default:
		}
	}
	return nil
}

func logHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return bytes.Contains(b, []byte(s))
}

// waitDrained waits until the group has committed the end of every input
// partition.
func (s *scaleCluster) waitDrained(ctx context.Context, adm *kadm.Client, timeout time.Duration, what string) {
	s.t.Helper()
	s.waitCommitted(ctx, adm, timeout, what, -1)
}

// committedNow returns how many input records the group has committed.
func (s *scaleCluster) committedNow(ctx context.Context, adm *kadm.Client) int64 {
	s.t.Helper()
	offs, err := adm.FetchOffsets(ctx, scaleGroup)
	if err != nil {
		s.t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) { n += max(o.At, 0) })
	return n
}

// waitCommitted waits until the group has committed at least n input
// records in all, or, with n < 0, the end of every input partition.
func (s *scaleCluster) waitCommitted(ctx context.Context, adm *kadm.Client, timeout time.Duration, what string, n int64) {
	s.t.Helper()
	waitFor(s.t, timeout, func() error {
		if err := s.exited(); err != nil {
			s.t.Fatal(err)
		}
		ends, err := adm.ListEndOffsets(ctx, scaleInput)
		if err != nil {
			return err
		}
		offs, err := adm.FetchOffsets(ctx, scaleGroup)
		if err != nil {
			return err
		}
		var done, end int64
		ends.Each(func(o kadm.ListedOffset) {
			end += o.Offset
			if r, ok := offs.Lookup(scaleInput, o.Partition); ok && r.Err == nil {
				done += max(r.At, 0)
			}
		})
		if n < 0 && done < end {
			return fmt.Errorf("%s: %d of %d input records committed", what, done, end)
		}
		if done < n {
			return fmt.Errorf("%s: %d input records committed, want %d", what, done, n)
		}
		return nil
	})
}

// scaleEvent is a line of a worker's log that the test reads.
type scaleEvent struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Partitions []int32   `json:"partitions"`
	Partition  int32     `json:"partition"`
	Revoked    bool      `json:"revoked"`
	Restored   int64     `json:"restored"`
	Took       int64     `json:"took"` // of a restore, in nanoseconds
	worker     string
}

// events returns the events of every worker's log, in time order.
func (s *scaleCluster) events() []scaleEvent {
	s.mu.Lock()
	ws := slices.Clone(s.workers)
	s.mu.Unlock()
	var evs []scaleEvent
	for _, w := range ws {
		f, err := os.Open(w.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			var e scaleEvent
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue // a line being written
			}
			switch e.Msg {
			case "partitions assigned", "partitions released", "first record", "partition running", "restored":
				e.worker = w.name
				evs = append(evs, e)
			}
		}
		_ = f.Close()
		s.mu.Lock()
		if !w.killedAt.IsZero() {
			// A killed worker releases its partitions when it dies.
			evs = append(evs, scaleEvent{Time: w.killedAt, Msg: "killed", worker: w.name})
		}
		s.mu.Unlock()
	}
	slices.SortStableFunc(evs, func(a, b scaleEvent) int { return a.Time.Compare(b.Time) })
	return evs
}

// partitionState is what the logs say of one partition at a point.
type partitionState struct {
	owner     string
	assigned  time.Time // when owner was assigned it
	processed bool      // owner processed a record of it since
}

// owners replays evs and returns each partition's state after them.
func owners(evs []scaleEvent) map[int32]*partitionState {
	st := make(map[int32]*partitionState)
	for p := range int32(scalePartitions) {
		st[p] = &partitionState{}
	}
	for _, e := range evs {
		switch e.Msg {
		case "partitions assigned":
			for _, p := range e.Partitions {
				st[p] = &partitionState{owner: e.worker, assigned: e.Time}
			}
		case "partitions released":
			for _, p := range e.Partitions {
				if st[p].owner == e.worker {
					st[p] = &partitionState{}
				}
			}
		case "killed":
			for p, ps := range st {
				if ps.owner == e.worker {
					st[p] = &partitionState{}
				}
			}
		case "first record":
			if ps := st[e.Partition]; ps.owner == e.worker {
				ps.processed = true
			}
		}
	}
	return st
}

// waitFirstRecords waits until the partitions are owned as want says (the
// least number of partitions each worker owns; all of them are owned by
// those workers) and every partition assigned since from has been
// processed by its owner since.
func (s *scaleCluster) waitFirstRecords(timeout time.Duration, from time.Time, what string, want map[string]int) {
	s.t.Helper()
	waitFor(s.t, timeout, func() error {
		if err := s.exited(); err != nil {
			s.t.Fatal(err)
		}
		st := owners(s.events())
		owned := make(map[string]int)
		for p, ps := range st {
			if _, ok := want[ps.owner]; !ok {
				return fmt.Errorf("%s: partition %d owned by %q", what, p, ps.owner)
			}
			if !ps.processed && !ps.assigned.Before(from) {
				return fmt.Errorf("%s: partition %d not processed by %s since its assignment", what, p, ps.owner)
			}
			owned[ps.owner]++
		}
		for w, n := range want {
			if owned[w] < n {
				return fmt.Errorf("%s: worker %s owns %d partitions, want at least %d", what, w, owned[w], n)
			}
		}
		return nil
	})
}

// scaleMove is a partition going from one worker to another.
type scaleMove struct {
	partition     int32
	from, to      string
	revoked       time.Time
	took          time.Duration // from the revocation to the new owner's first record
	assignedAfter time.Duration // from the revocation to the new owner's assignment
	restored      int64         // changelog records the new owner restored; -1 if not logged
	restoreTook   time.Duration // how long the restore took, as the new owner logged it; 0 if none
}

// moves returns every move of a partition the logs show that finished with
// a record processed by its new owner.
func (s *scaleCluster) moves() []scaleMove {
	type pending struct {
		from     string
		revoked  time.Time
		assigned time.Time
		to       string
		restored int64
		took     time.Duration
	}
	open := make(map[int32]*pending)
	owner := make(map[int32]string)
	last := make(map[int32]*scaleMove) // the partition's last move, finished
	var moves []*scaleMove
	for _, e := range s.events() {
		switch e.Msg {
		case "partitions released":
			for _, p := range e.Partitions {
				open[p] = &pending{from: e.worker, revoked: e.Time, restored: -1}
				if owner[p] == e.worker {
					delete(owner, p)
				}
			}
		case "killed":
			for p, w := range owner {
				if w == e.worker && open[p] == nil {
					open[p] = &pending{from: e.worker, revoked: e.Time, restored: -1}
				}
			}
		case "partitions assigned":
			for _, p := range e.Partitions {
				owner[p] = e.worker
				if m := open[p]; m != nil && m.to == "" && m.from != e.worker {
					m.to, m.assigned = e.worker, e.Time
				}
			}
		case "partition running":
			// Logged within a poll of Stats of the partition's
			// restore ending: before its first record or after.
			if m := open[e.Partition]; m != nil && m.to == e.worker {
				m.restored = e.Restored
			} else if m := last[e.Partition]; m != nil && m.to == e.worker && m.restored < 0 {
				m.restored = e.Restored
			}
		case "restored":
			if m := open[e.Partition]; m != nil && m.to == e.worker {
				m.took = time.Duration(e.Took)
			}
		case "first record":
			if m := open[e.Partition]; m != nil && m.to == e.worker {
				mv := &scaleMove{partition: e.Partition, from: m.from, to: m.to, revoked: m.revoked,
					took: e.Time.Sub(m.revoked), assignedAfter: m.assigned.Sub(m.revoked), restored: m.restored, restoreTook: m.took}
				moves = append(moves, mv)
				last[e.Partition] = mv
				delete(open, e.Partition)
			}
		}
	}
	out := make([]scaleMove, len(moves))
	for i, m := range moves {
		out[i] = *m
	}
	return out
}

// summarizeMoves gives the number, median and largest revocation-to-first-
// record time of the moves of each scaling.
func summarizeMoves(moves []scaleMove, upAt, downAt time.Time) string {
	var parts []string
	for _, phase := range []struct {
		name     string
		from, to time.Time
	}{{"1→3", upAt, downAt}, {"3→1", downAt, time.Now()}} {
		var ds []time.Duration
		for _, m := range moves {
			if !m.revoked.Before(phase.from) && m.revoked.Before(phase.to) {
				ds = append(ds, m.took)
			}
		}
		slices.Sort(ds)
		if len(ds) == 0 {
			parts = append(parts, phase.name+"-moves=0")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s-moves=%d revocation-to-first-record p50=%v max=%v",
			phase.name, len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond)))
	}
	return strings.Join(parts, " ")
}

// checkOutput reads the output topic, read committed, to its end and checks
// that the outputs of every key are its counts 1 to want[key], in order,
// each once.
func (s *scaleCluster) checkOutput(ctx context.Context, addrs []string, want map[string]int64) {
	s.t.Helper()
	cl := mustClient(s.t, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(scaleOutput),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// A marker at the end of every partition, outside any transaction:
	// read up to it, a partition has been read to its end.
	marker := fmt.Sprintf("-end-%d-", time.Now().UnixNano())
	for p := range int32(scalePartitions) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: scaleOutput, Partition: p, Value: []byte(marker)}).FirstErr(); err != nil {
			s.t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	last := make(map[string]int64, len(want))
	var bad []string
	for ends := 0; ends < scalePartitions; {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			s.t.Fatalf("output: %d of %d partitions read to their end", ends, scalePartitions)
		}
		fs.EachError(func(_ string, p int32, err error) { s.t.Fatalf("read output %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == marker {
				ends++
				return
			}
			k := string(r.Key)
			n, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil || n != last[k]+1 {
				bad = append(bad, fmt.Sprintf("%s: output %q after %d", k, r.Value, last[k]))
			}
			last[k] = n
		})
	}
	for k, n := range want {
		if last[k] != n {
			bad = append(bad, fmt.Sprintf("%s: last output %d, want %d", k, last[k], n))
		}
	}
	for k := range last {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("%s: outputs of a key never produced", k))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		s.t.Errorf("output: %d problems; the first: %s", len(bad), strings.Join(bad[:min(len(bad), 10)], "; "))
	}
}

// checkWorkerOutput fails the test if a worker's race detector or runtime
// reported anything.
func (s *scaleCluster) checkWorkerOutput() {
	s.mu.Lock()
	ws := slices.Clone(s.workers)
	s.mu.Unlock()
	for _, w := range ws {
		b, _ := os.ReadFile(w.out)
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if i := bytes.Index(b, []byte(bad)); i >= 0 {
				s.t.Errorf("worker %s wrote %q:\n%s", w.name, bad, b[i:min(len(b), i+4000)])
			}
		}
	}
}

func (s *scaleCluster) dumpOnFailure() {
	if !s.t.Failed() {
		return
	}
	s.mu.Lock()
	ws := slices.Clone(s.workers)
	s.mu.Unlock()
	for _, w := range ws {
		s.t.Logf("worker %s log tail:\n%s", w.name, tail(w.log, 30))
		if out := tail(w.out, 15); strings.TrimSpace(out) != "" {
			s.t.Logf("worker %s output tail:\n%s", w.name, out)
		}
	}
}
