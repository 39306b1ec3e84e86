package export

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store/pebble"
)

const (
	killEnvBrokers = "EXPORT_KILL_BROKERS"
	killEnvSink    = "EXPORT_KILL_SINK"
	killEnvState   = "EXPORT_KILL_STATE"
	// killEnvTopic, if set, makes the process write the events to this
	// topic, exactly once, instead of to the sink.
	killEnvTopic = "EXPORT_KILL_TOPIC"
)

// TestExportKillProcess is the export process of
// TestExportLosesNothingWhenItsProcessIsKilled, skipped unless that test
// started it.
func TestExportKillProcess(t *testing.T) {
	brokers := os.Getenv(killEnvBrokers)
	if brokers == "" {
		t.Skip("the export process of TestExportLosesNothingWhenItsProcessIsKilled; runs only when it starts it")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	// The test holds stdin and never writes: EOF means it is gone, and the
	// process must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	cfg := Config{
		Brokers:     []string{brokers},
		Group:       GroupConfig{Bucket: time.Second, ResendAfter: 300 * time.Millisecond},
		Exporter:    ExporterConfig{Limits: e2eLimits, BatchWait: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		IdleAdvance: 300 * time.Millisecond,
		Storage:     pebble.Builder(os.Getenv(killEnvState)),
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Options: []sluice.ProcessorOpt{
			sluice.TopicDefaults(e2ePartitions, 1),
			sluice.CommitInterval(100 * time.Millisecond),
			// A killed process holds its partitions until its session
			// times out; keep that short of the test's budget.
			sluice.SessionTimeout(3 * time.Second),
			sluice.KafkaOptions(kgo.HeartbeatInterval(300*time.Millisecond), kgo.RebalanceTimeout(5*time.Second), kgo.TransactionTimeout(5*time.Second)),
		},
	}
	if topic := os.Getenv(killEnvTopic); topic != "" {
		cfg.Topic, cfg.Guarantee = topic, sluice.ExactlyOnce
	} else {
		sink, err := NewHTTPSink(os.Getenv(killEnvSink), nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sink = sink
	}
	if err := Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// killable is a started export process.
type killable struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

func startExportProcess(t *testing.T, brokers, sinkURL, state, log string, env ...string) *killable {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestExportKillProcess$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), killEnvBrokers+"="+brokers, killEnvSink+"="+sinkURL, killEnvState+"="+state)
	cmd.Env = append(cmd.Env, env...)
	out, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &killable{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(k.done)
	}()
	t.Cleanup(func() { k.kill() })
	return k
}

// stop SIGTERMs the process, which stops gracefully, and waits until it is
// gone.
func (k *killable) stop() {
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	<-k.done
	_ = k.stdin.Close()
}

// kill SIGKILLs the process and waits until it is gone.
func (k *killable) kill() {
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	<-k.done
	_ = k.stdin.Close()
}

func TestExportLosesNothingWhenItsProcessIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts export processes")
	}
	b := startTestBroker(t)
	cl := newInputClient(t, b)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	u := genUpdates(rand.New(rand.NewPCG(21, 22)), start, time.Second, 16)
	first, second := u, u
	first.buckets, second.buckets = u.buckets[:8], u.buckets[8:]

	f, srv := newFlakySink(t, e2eLimits, 0.2, 0.05)
	w := &watchSent{latest: u.latest}
	f.onLine = w.line
	dir := t.TempDir()
	state, log := filepath.Join(dir, "state"), filepath.Join(dir, "export.log")
	defer func() {
		if t.Failed() {
			data, _ := os.ReadFile(log)
			t.Logf("export processes' log:\n%s", data)
		}
	}()
	takenCount := func() int {
		taken, _, _, _, _ := f.snapshot()
		return len(taken)
	}

	// Half the buckets; the process is killed once the sink took half of
	// their events, with the rest queued, in calls or not yet closed.
	produceBuckets(t, cl, first)
	p := startExportProcess(t, b.Addrs()[0], srv.URL+"/events", state, log)
	waitFor(t, 120*time.Second, "a quarter of the events taken", func() bool { return takenCount() >= len(u.latest)/4 })
	p.kill()
	killedAt := takenCount()

	// The rest of the buckets, and a new process on the same state
	// directory, killed again midway.
	produceBuckets(t, cl, second)
	p = startExportProcess(t, b.Addrs()[0], srv.URL+"/events", state, log)
	waitFor(t, 120*time.Second, "more events taken", func() bool { return takenCount() >= killedAt+len(u.latest)/4 })
	p.kill()

	// A last process on an empty state directory, which restores the
	// table, pending rows included, from the changelog.
	startExportProcess(t, b.Addrs()[0], srv.URL+"/events", filepath.Join(dir, "state-new"), log)
	waitFor(t, 180*time.Second, "every (key, bucket) taken", func() bool {
		taken, _, _, _, _ := f.snapshot()
		for id := range u.latest {
			if taken[id] == 0 {
				return false
			}
		}
		return true
	})
	_, calls, failed, rejected, broken := f.snapshot()
	if len(broken) > 0 {
		t.Fatalf("limits broken: %v", broken)
	}
	if wrong := w.errors(); len(wrong) > 0 {
		t.Fatalf("%d lines sent that are not the latest value of their bucket, first %s", len(wrong), wrong[0])
	}
	t.Logf("%d events, taken %d before the first kill; %d calls (%d failed), %d lines rejected", len(u.latest), killedAt, calls, failed, rejected)
}
