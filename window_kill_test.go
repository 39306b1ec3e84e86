package sluice_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

// What TestWindowsAfterASIGKILL tells its worker processes.
const (
	windowEnvBrokers = "SLUICE_WINDOW_WORKER_BROKERS"
	windowEnvState   = "SLUICE_WINDOW_WORKER_STATE"
)

// TestWindowWorker runs windowCounts exactly once in a process of its own,
// for TestWindowsAfterASIGKILL to kill. It is skipped unless that test
// started it.
func TestWindowWorker(t *testing.T) {
	brokers := os.Getenv(windowEnvBrokers)
	if brokers == "" {
		t.Skip("a worker process of TestWindowsAfterASIGKILLExactlyOnceAreThoseOfARunWithoutIt")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// EOF on stdin means the test is gone: a worker must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	p, err := sluice.NewProcessor(windowCounts(),
		sluice.Brokers(brokers),
		sluice.Storage(pebble.Builder(os.Getenv(windowEnvState))),
		sluice.TopicDefaults(2, 1),
		sluice.CommitInterval(100*time.Millisecond),
		sluice.Guarantee(sluice.ExactlyOnce),
		sluice.Logger(slog.New(slog.DiscardHandler)),
		// A killed worker's partitions and open transaction are let go
		// of within seconds, not the defaults' tens of seconds.
		sluice.SessionTimeout(6*time.Second),
		sluice.KafkaOptions(
			kgo.HeartbeatInterval(500*time.Millisecond),
			kgo.RebalanceTimeout(10*time.Second),
			kgo.TransactionTimeout(10*time.Second),
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// startWindowWorker starts a TestWindowWorker process on state dir dir and
// returns the function that SIGKILLs it and waits until it is gone.
func startWindowWorker(t *testing.T, brokers, dir string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWindowWorker$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), windowEnvBrokers+"="+brokers, windowEnvState+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		_ = stdin.Close()
	}
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			kill()
		}
		if t.Failed() {
			t.Logf("worker on %s:\n%s", dir, out.String())
		}
	})
	return kill
}

func TestWindowsAfterASIGKILLExactlyOnceAreThoseOfARunWithoutIt(t *testing.T) {
	const keys = 8
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(2))
	brokers := strings.Join(b.Addrs(), ",")
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("wresults"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	adm := kadm.NewClient(cl)
	produced := 0
	produceAt := func(sec int64) {
		t.Helper()
		for k := range keys {
			r := &kgo.Record{Topic: "wclicks", Key: fmt.Appendf(nil, "k%d", k), Value: []byte("click"), Timestamp: time.Unix(sec, 0)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			produced++
		}
	}
	committed := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, "wcounts")
		if err != nil {
			return err
		}
		var n int64
		offs.Each(func(o kadm.OffsetResponse) { n += o.At })
		if n != int64(produced) {
			return fmt.Errorf("%d of %d input records committed", n, produced)
		}
		return nil
	}

	dir := t.TempDir()
	kill := startWindowWorker(t, brokers, dir)
	produceAt(1)
	produceAt(2)
	produceAt(11) // closes [0,10)
	produceAt(13)
	waitFor(t, 60*time.Second, committed)
	// Killed with [10,20) open, and maybe a transaction with the record
	// at 15s in it.
	produceAt(15)
	kill()
	startWindowWorker(t, brokers, dir)
	for _, sec := range []int64{21, 31, 100} {
		produceAt(sec)
	}

	expectWindowResults(t, cl, keys, 120*time.Second, "a run without the kill")
	expectNoWindowTombstones(t, b, "wcounts")
}
