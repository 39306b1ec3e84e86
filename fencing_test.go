package sluice_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store/pebble"
)

// What TestRestartedExactlyOnceProcessorFencesItsKilledPredecessor tells the
// process it kills; fenceEnvBrokers is what makes TestFencedWorker run.
const (
	fenceEnvBrokers = "SLUICE_FENCE_BROKERS"
	fenceEnvState   = "SLUICE_FENCE_STATE"
)

const (
	fenceGroup    = "fence"
	fenceInput    = "fence-in"
	fenceInstance = "fence-1"
	fenceParts    = 2
	// Longer than the test waits for the restarted processor, so that a
	// transaction left to time out cannot pass for one that was fenced.
	fenceTxnTimeout = 60 * time.Second
)

// fenceProcessorOpts are the options of both processors of the fencing
// test: one instance, exactly once, with a long transaction timeout.
func fenceProcessorOpts(addrs []string, stateDir string, extra ...sluice.ProcessorOpt) []sluice.ProcessorOpt {
	return append([]sluice.ProcessorOpt{
		sluice.Brokers(addrs...),
		sluice.Logger(testLogger()),
		sluice.TopicDefaults(fenceParts, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.Guarantee(sluice.ExactlyOnce),
		sluice.InstanceID(fenceInstance),
		sluice.KafkaOptions(kgo.TransactionTimeout(fenceTxnTimeout)),
	}, extra...)
}

// TestFencedWorker is the processor that
// TestRestartedExactlyOnceProcessorFencesItsKilledPredecessor kills in the
// middle of a transaction. It is skipped unless that test started it.
func TestFencedWorker(t *testing.T) {
	addrs := os.Getenv(fenceEnvBrokers)
	if addrs == "" {
		t.Skip("the process TestRestartedExactlyOnceProcessorFencesItsKilledPredecessor kills")
	}
	// The test holds the other end of stdin: EOF means it is gone, and
	// this process must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	// The transaction stays open until the process is killed.
	p, err := sluice.NewProcessor(echoCounter(fenceGroup, fenceInput),
		fenceProcessorOpts(strings.Split(addrs, ","), os.Getenv(fenceEnvState), sluice.CommitInterval(time.Hour))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A processor that restarts with the InstanceID of one killed in the middle
// of a transaction fences that transaction at once: the outputs are readable
// by a read-committed reader long before the transaction would time out.
func TestRestartedExactlyOnceProcessorFencesItsKilledPredecessor(t *testing.T) {
	b := startBroker(t)
	const n = 40
	em := newEmitter(t, fenceInput, emitterOpts(b, fenceParts))
	emitN(t, em, n, 8, map[string]int64{})
	state := t.TempDir()

	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFencedWorker$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), fenceEnvBrokers+"="+strings.Join(b.Addrs(), ","), fenceEnvState+"="+state)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	out := fenceGroup + "-out"
	// Its outputs are written, in a transaction it never ends.
	waitFor(t, 30*time.Second, func() error {
		if got := readTopic(t, b.Addrs(), out, false); len(got) < n {
			return fmt.Errorf("%d of %d outputs written", len(got), n)
		}
		return nil
	})
	if got := readTopic(t, b.Addrs(), out, true); len(got) != 0 {
		t.Fatalf("committed outputs %v before the kill, want none: the transaction must be open", got)
	}
	_ = cmd.Process.Kill() // SIGKILL
	_ = cmd.Wait()
	killed = true

	r := runProcessor(t, echoCounter(fenceGroup, fenceInput), fenceProcessorOpts(b.Addrs(), state)...)
	waitFor(t, fenceTxnTimeout/2, func() error {
		if got := readTopic(t, b.Addrs(), out, true); len(got) != n {
			return fmt.Errorf("%d committed outputs, want %d", len(got), n)
		}
		return nil
	})
	r.stop(t)
}

// Two processors of one group in one process with the same InstanceID would
// take each other's place in the group and fence each other's transactions:
// the second is refused.
func TestProcessorsOfOneGroupInOneProcessNeedTheirOwnInstanceID(t *testing.T) {
	b := startBroker(t)
	opts := append(processorOpts(b, 2, t.TempDir()), sluice.InstanceID("twin"))
	fp, err := sluice.NewProcessor(defineCounter("twins", "twins-in"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	first := runInBackground(t, fp.Run)
	p, err := sluice.NewProcessor(defineCounter("twins", "twins-in"), append(processorOpts(b, 2, t.TempDir()), sluice.InstanceID("twin"))...)
	if err != nil {
		t.Fatal(err)
	}
	// The first claims its id when Run begins.
	waitFor(t, 10*time.Second, func() error {
		if len(fp.Stats().Partitions) == 0 {
			return fmt.Errorf("first processor owns no partition yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if err == nil || !containsAll(err.Error(), "twins", `"twin"`, "already") {
		t.Fatalf("second Run with the same InstanceID: %v, want an error naming the group and the id", err)
	}
	// Another group may use the same id.
	other := runProcessor(t, defineCounter("others", "twins-in"), append(processorOpts(b, 2, t.TempDir()), sluice.InstanceID("twin"))...)
	first.stop(t)
	other.stop(t)

	// Once the first has returned, its id is free again.
	again := runProcessor(t, defineCounter("twins", "twins-in"), opts...)
	again.stop(t)
}
