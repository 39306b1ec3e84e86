package sluice_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// startBroker starts an in-memory embedded broker for one test.
func startBroker(t *testing.T, opts ...broker.Opt) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, opts...)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// clientOpts are the options every object of a test uses.
func clientOpts(b *broker.Broker, partitions int32) []sluice.Opt {
	return []sluice.Opt{
		sluice.Brokers(b.Addrs()...),
		sluice.Logger(testLogger()),
		sluice.TopicDefaults(partitions, 1),
	}
}

// counter is the table row of the test groups: how many records a key had.
type counter struct {
	Count int64
}

// defineCounter defines a group that counts the records of input per key.
func defineCounter(name, input string) *sluice.Group[counter] {
	g := sluice.DefineGroup[counter](name)
	sluice.Persist(g, codec.JSON[counter]())
	sluice.Input(g, input, codec.String(), func(ctx *sluice.Context[counter], _ string) error {
		c, _ := ctx.Value()
		c.Count++
		ctx.SetValue(c)
		return nil
	})
	return g
}

// running is a processor running in the background of a test.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("processor stopped with error: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("processor did not stop within 30s")
	}
}

func runProcessor[V any](t *testing.T, g *sluice.Group[V], opts ...sluice.ProcessorOpt) *running {
	t.Helper()
	p, err := sluice.NewProcessor(g, opts...)
	if err != nil {
		t.Fatalf("new processor: %v", err)
	}
	return runInBackground(t, p.Run)
}

// runInBackground runs run until the test ends, when it cancels it and
// waits up to 30s for it to return.
func runInBackground(t *testing.T, run func(context.Context) error) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

func processorOpts(b *broker.Broker, partitions int32, stateDir string) []sluice.ProcessorOpt {
	var opts []sluice.ProcessorOpt
	for _, o := range clientOpts(b, partitions) {
		opts = append(opts, o)
	}
	return append(opts, sluice.Storage(pebble.Builder(stateDir)), sluice.CommitInterval(200*time.Millisecond))
}

func viewOpts(b *broker.Broker, partitions int32) []sluice.ViewOpt {
	var opts []sluice.ViewOpt
	for _, o := range clientOpts(b, partitions) {
		opts = append(opts, o)
	}
	return opts
}

func emitterOpts(b *broker.Broker, partitions int32, extra ...sluice.EmitterOpt) []sluice.EmitterOpt {
	var opts []sluice.EmitterOpt
	for _, o := range clientOpts(b, partitions) {
		opts = append(opts, o)
	}
	return append(opts, extra...)
}

// startView runs a view in the background and waits until it is restored.
func startView[V any](t *testing.T, table string, c codec.Codec[V], opts ...sluice.ViewOpt) *sluice.View[V] {
	t.Helper()
	v, err := sluice.NewView(table, c, opts...)
	if err != nil {
		t.Fatalf("new view: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := v.WaitReady(wctx); err != nil {
		t.Fatalf("view %s not ready: %v", table, err)
	}
	return v
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met after %v: %v", timeout, err)
}

// expectCounts waits until the view holds exactly want.
func expectCounts(t *testing.T, v *sluice.View[counter], want map[string]int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		for k, n := range want {
			c, err := v.Get(k)
			if err != nil {
				return fmt.Errorf("get %s: %w", k, err)
			}
			if c.Count != n {
				return fmt.Errorf("key %s: count %d, want %d", k, c.Count, n)
			}
		}
		return nil
	})
}

// startRun calls run in the background and returns the channel its error
// arrives on and the function that stops it; the test's end stops it too
// and waits up to 30s for it to return.
func startRun(t *testing.T, run func(context.Context) error) (<-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		done <- run(ctx)
		close(returned)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-returned:
		case <-time.After(30 * time.Second):
		}
	})
	return done, cancel
}

// await waits up to d for a value from ch, or for ch to be closed, and
// fails the test with what if none comes.
func await[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s within %v", what, d)
		panic("unreachable")
	}
}

// childProcess is this test binary run again as a separate process, for a
// test that kills it.
type childProcess struct {
	cmd  *exec.Cmd
	said chan error // nil once the child printed the awaited line
}

// startChild runs the test binary's test named test in a child process with
// env added to its environment; awaited is the line of its standard output
// that await waits for.
func startChild(t *testing.T, test string, awaited string, env ...string) *childProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childProcess{cmd: cmd, said: make(chan error, 1)}
	go func() {
		var said []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == awaited {
				c.said <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
			said = append(said, sc.Text())
		}
		c.said <- fmt.Errorf("child ended before it printed %q (%v); it said:\n%s", awaited, sc.Err(), strings.Join(said, "\n"))
	}()
	return c
}

// await waits up to d for the child to print its awaited line.
func (c *childProcess) await(d time.Duration) error {
	select {
	case err := <-c.said:
		return err
	case <-time.After(d):
		return fmt.Errorf("the child did not print its line within %s", d)
	}
}

// kill SIGKILLs the child and waits for it to end.
func (c *childProcess) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}
