package bench

// The processors of BenchmarkSteady run in a child process of their own
// (TestSteadyChild), so that the CPU time they use is theirs alone: the
// broker, the producer of the load and the reader of the outputs stay in the
// parent. The child reads commands from its standard input, one a line:
// "cpu" makes it print the CPU time it has used so far, and the end of its
// input makes it stop its processor and exit.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// Environment of the child process of BenchmarkSteady.
const (
	steadySideEnv    = "SLUICE_BENCH_STEADY_SIDE"
	steadyBrokersEnv = "SLUICE_BENCH_STEADY_BROKERS"
	steadyStateEnv   = "SLUICE_BENCH_STEADY_STATE"
	// steadyCPUPrefix starts the line on which the child reports the CPU
	// time, user and system, it has used so far, in nanoseconds, or -1
	// where it cannot be read, and then the transactions its processor
	// has committed so far (0 for raw).
	steadyCPUPrefix = "steady-cpu-ns "
)

// steadyProcessor is the processor of a sluice side in the child process,
// once made.
var steadyProcessor atomic.Pointer[sluice.Processor[int64]]

// steadySide is one side of BenchmarkSteady: what the child process runs,
// and the topic its outputs go to.
type steadySide struct {
	name   string
	output string
	run    func(ctx context.Context, addrs []string, stateDir string) error
}

// steadySides are the sides of BenchmarkSteady, in the order they run at
// each rate.
var steadySides = []steadySide{
	{name: "raw", output: rawOutput, run: rawSteady},
	{name: "at-least-once", output: sluiceOutput, run: sluiceSteady(sluice.AtLeastOnce, 0)},
	{name: "exactly-once", output: sluiceOutput, run: sluiceSteady(sluice.ExactlyOnce, 0)},
	{name: "exactly-once-20ms", output: sluiceOutput, run: sluiceSteady(sluice.ExactlyOnce, 20*time.Millisecond)},
}

func steadySideNamed(name string) (steadySide, bool) {
	for _, s := range steadySides {
		if s.name == name {
			return s, true
		}
	}
	return steadySide{}, false
}

// rawSteady is the raw franz-go side of BenchmarkSteady: the consumer group
// member of rawCount, which counts records per key in a map and produces
// each key's new count to rawOutput with the input record's headers, until
// ctx is done. Its producer does not linger, as sluice's does not, so that
// the latencies compare like with like.
func rawSteady(ctx context.Context, addrs []string, _ string) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumerGroup(rawGroup),
		kgo.ConsumeTopics(inputTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitInterval(commitInterval),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return fmt.Errorf("raw: client: %w", err)
	}
	defer cl.Close()
	var produced firstError
	counts := make(map[string]int64, keys)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = fmt.Errorf("raw: fetch %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			c := counts[string(r.Key)] + 1
			counts[string(r.Key)] = c
			cl.Produce(ctx, &kgo.Record{Topic: rawOutput, Key: r.Key, Value: strconv.AppendInt(nil, c, 10), Headers: r.Headers}, produced.promise)
		})
		if err := produced.get(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("raw: produce: %w", err)
		}
	}
}

// steadyGroup is countGroup, which also gives every count it emits the
// headers of the input record that led to it.
func steadyGroup() *sluice.Group[int64] {
	g := sluice.DefineGroup[int64](sluiceGroup)
	sluice.Persist(g, codec.Int64())
	out := sluice.Output(g, sluiceOutput, codec.Int64())
	sluice.Input(g, inputTopic, codec.Bytes(), func(ctx *sluice.Context[int64], _ []byte) error {
		n, _ := ctx.Value()
		n++
		ctx.SetValue(n)
		return out.Emit(ctx, ctx.Key(), n, ctx.Headers()...)
	})
	return g
}

// sluiceSteady returns a sluice side of BenchmarkSteady: a processor of
// steadyGroup with its table in Pebble, with guarantee g and, if not 0, the
// commit interval interval, which runs until ctx is done.
func sluiceSteady(g sluice.DeliveryGuarantee, interval time.Duration) func(context.Context, []string, string) error {
	return func(ctx context.Context, addrs []string, stateDir string) error {
		opts := []sluice.ProcessorOpt{
			sluice.Brokers(addrs...),
			sluice.TopicDefaults(partitions, 1),
			sluice.Storage(pebble.Builder(stateDir)),
			sluice.Guarantee(g),
		}
		if interval > 0 {
			opts = append(opts, sluice.CommitInterval(interval))
		}
		p, err := sluice.NewProcessor(steadyGroup(), opts...)
		if err != nil {
			return fmt.Errorf("sluice: %w", err)
		}
		steadyProcessor.Store(p)
		return p.Run(ctx)
	}
}

// TestSteadyChild is the child process of BenchmarkSteady, which starts it:
// it runs one side until its standard input ends, and reports its CPU time
// whenever it reads the line "cpu". Run otherwise, it skips.
func TestSteadyChild(t *testing.T) {
	name := os.Getenv(steadySideEnv)
	if name == "" {
		t.Skip("the child process of BenchmarkSteady")
	}
	side, ok := steadySideNamed(name)
	if !ok {
		t.Fatalf("unknown side %q", name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		ran <- side.run(ctx, strings.Split(os.Getenv(steadyBrokersEnv), ","), os.Getenv(steadyStateEnv))
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case err := <-ran:
			t.Fatalf("%s stopped before it was told to: %v", name, err)
		case line, ok := <-lines:
			if !ok {
				cancel()
				if err := <-ran; err != nil {
					t.Fatal(err)
				}
				return
			}
			if line == "cpu" {
				cpu, ok := processCPU()
				ns := cpu.Nanoseconds()
				if !ok {
					ns = -1
				}
				var commits int64
				if p := steadyProcessor.Load(); p != nil {
					commits = p.Stats().Commits
				}
				fmt.Printf("%s%d %d\n", steadyCPUPrefix, ns, commits)
			}
		}
	}
}

// childUsage is what the child reports when asked: its CPU time so far, -1
// if unknown, and the transactions it committed so far.
type childUsage struct {
	cpu     time.Duration
	commits int64
}

// steadyChild is a running child process of BenchmarkSteady.
type steadyChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	cpu    chan childUsage // the answers to "cpu"
	mu     sync.Mutex
	said   strings.Builder // the rest of what it printed
	exited chan struct{}   // closed once its output ended
}

// startSteadyChild starts a child process that runs side against addrs.
func startSteadyChild(tb testing.TB, side string, addrs []string) *steadyChild {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{"-test.run=^TestSteadyChild$", "-test.count=1", "-test.v"}
	// A profile asked of the benchmark is the child's too, in a file of
	// its own per side: the processors' CPU and allocations are there.
	for _, name := range []string{"test.cpuprofile", "test.memprofile"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			args = append(args, "-"+name+"="+f.Value.String()+"."+side)
		}
	}
	// The rate of the memory profile goes with it, so that the child's
	// small allocations are sampled as finely as the benchmark's.
	if f := flag.Lookup("test.memprofilerate"); f != nil && f.Value.String() != "0" {
		args = append(args, "-test.memprofilerate="+f.Value.String())
	}
	c := &steadyChild{
		cmd:    exec.Command(exe, args...),
		cpu:    make(chan childUsage, 1),
		exited: make(chan struct{}),
	}
	c.cmd.Env = append(os.Environ(),
		steadySideEnv+"="+side,
		steadyBrokersEnv+"="+strings.Join(addrs, ","),
		steadyStateEnv+"="+tb.TempDir(),
	)
	c.cmd.Stderr = os.Stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("%s: start child process: %v", side, err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), steadyCPUPrefix); ok {
				u := childUsage{cpu: -1}
				if f := strings.Fields(s); len(f) == 2 {
					ns, err1 := strconv.ParseInt(f[0], 10, 64)
					commits, err2 := strconv.ParseInt(f[1], 10, 64)
					if err1 == nil && err2 == nil {
						u = childUsage{cpu: time.Duration(ns), commits: commits}
					}
				}
				c.cpu <- u
				continue
			}
			c.mu.Lock()
			c.said.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
		}
	}()
	return c
}

// usage returns the CPU time the child has used so far (negative if it
// cannot tell) and the transactions it committed so far.
func (c *steadyChild) usage() (childUsage, error) {
	if _, err := io.WriteString(c.stdin, "cpu\n"); err != nil {
		return childUsage{}, fmt.Errorf("ask the child for its cpu time: %w; it said:\n%s", err, c.output())
	}
	select {
	case u := <-c.cpu:
		return u, nil
	case <-c.exited:
		return childUsage{}, fmt.Errorf("the child exited; it said:\n%s", c.output())
	case <-time.After(30 * time.Second):
		return childUsage{}, errors.New("the child did not report its cpu time within 30s")
	}
}

// stop ends the child's input, which stops it, and waits for it to exit.
func (c *steadyChild) stop() error {
	_ = c.stdin.Close()
	exited := make(chan error, 1)
	go func() {
		<-c.exited
		exited <- c.cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("child process: %w; it said:\n%s", err, c.output())
		}
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-exited
		return fmt.Errorf("child process did not stop within a minute; it said:\n%s", c.output())
	}
}

func (c *steadyChild) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.said.String()
}
