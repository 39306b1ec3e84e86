package sluice_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store/pebble"
)

// What TestConcurrentInputRedoesOnlyUnfinishedRecordsAfterAKill tells the
// process it kills; ccCrashEnvBrokers is what makes TestConcurrentCrashWorker
// run.
const (
	ccCrashEnvBrokers = "SLUICE_CCCRASH_BROKERS"
	ccCrashEnvState   = "SLUICE_CCCRASH_STATE"
	ccCrashEnvGroup   = "SLUICE_CCCRASH_GROUP"
	ccCrashEnvEOS     = "SLUICE_CCCRASH_EOS"
)

// ccCrashOpts are the options of the killed processor and of the one that
// takes its place: one partition, one instance.
func ccCrashOpts(addrs []string, stateDir string, exactlyOnce bool) []sluice.ProcessorOpt {
	opts := []sluice.ProcessorOpt{
		sluice.Brokers(addrs...),
		sluice.Logger(testLogger()),
		sluice.TopicDefaults(1, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(200 * time.Millisecond),
		sluice.InstanceID("cccrash-1"),
	}
	if exactlyOnce {
		opts = append(opts, sluice.Guarantee(sluice.ExactlyOnce))
	}
	return opts
}

// TestConcurrentCrashWorker is the processor that
// TestConcurrentInputRedoesOnlyUnfinishedRecordsAfterAKill kills while the
// records v3 and v6 are in flight, for ever. It is skipped unless that test
// started it.
func TestConcurrentCrashWorker(t *testing.T) {
	addrs := os.Getenv(ccCrashEnvBrokers)
	if addrs == "" {
		t.Skip("the process TestConcurrentInputRedoesOnlyUnfinishedRecordsAfterAKill kills")
	}
	// The test holds the other end of stdin: EOF means it is gone, and
	// this process must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	g := newGate()
	g.hold("v3", "v6")
	p, err := sluice.NewProcessor(concurrentGroup(os.Getenv(ccCrashEnvGroup), g, 4),
		ccCrashOpts(strings.Split(addrs, ","), os.Getenv(ccCrashEnvState), os.Getenv(ccCrashEnvEOS) != "")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A processor is SIGKILLed with records in flight: the one that takes its
// place handles exactly the unfinished records, skipping those the
// committed metadata lists as finished above the lowest of them, and every
// record's emit is there (exactly once, once).
func TestConcurrentInputRedoesOnlyUnfinishedRecordsAfterAKill(t *testing.T) {
	for _, exactlyOnce := range []bool{false, true} {
		name := "at least once"
		if exactlyOnce {
			name = "exactly once"
		}
		t.Run(name, func(t *testing.T) {
			b := startBroker(t)
			group := "cccrash"
			if exactlyOnce {
				group = "cccrash-eos"
			}
			var pairs []string
			for i := range 10 {
				pairs = append(pairs, fmt.Sprintf("k%d=v%d", i, i))
			}
			produceKV(t, b, group+"-in", pairs...)
			state := t.TempDir()

			stdin, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentCrashWorker$", "-test.count=1", "-test.timeout=0")
			cmd.Env = append(os.Environ(), ccCrashEnvBrokers+"="+strings.Join(b.Addrs(), ","),
				ccCrashEnvState+"="+state, ccCrashEnvGroup+"="+group)
			if exactlyOnce {
				cmd.Env = append(cmd.Env, ccCrashEnvEOS+"=1")
			}
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
			adm := admin(t, b)
			awaitCommitted(t, adm, group, group+"-in", 3)
			if !exactlyOnce {
				// The finished records' emits are written as they finish.
				readAll(t, b.Addrs(), group+"-out", 8)
			}
			awaitFinishedCommitted(t, adm, group, group+"-in", 3, []int64{4, 5, 7, 8, 9})
			_ = cmd.Process.Kill() // SIGKILL
			_ = cmd.Wait()
			killed = true
			if at := committed(t, adm, group, group+"-in"); at != 3 {
				t.Fatalf("committed offset %d at the kill, want 3, the lowest unfinished record", at)
			}

			again := newGate()
			r := runProcessor(t, concurrentGroup(group, again, 4), ccCrashOpts(b.Addrs(), state, exactlyOnce)...)
			awaitN(t, again.finished, 2, "the new processor handled offsets 3 and 6")
			awaitCommitted(t, adm, group, group+"-in", 10)
			r.stop(t)
			again.mu.Lock()
			seen := slices.Sorted(slices.Values(again.seen))
			again.mu.Unlock()
			if want := []int64{3, 6}; !slices.Equal(seen, want) {
				t.Fatalf("the new processor handled offsets %v, want %v: the unfinished records alone", seen, want)
			}
			got := readCommitted(t, b.Addrs(), group+"-out")
			for i := range 10 {
				if !slices.Contains(got, fmt.Sprintf("v%d", i)) {
					t.Fatalf("v%d never emitted: %v", i, got)
				}
			}
			if exactlyOnce && len(got) != 10 {
				t.Fatalf("committed emits %v, want each record's once", got)
			}
		})
	}
}

// awaitFinishedCommitted waits until the group committed offset at for
// partition 0 of topic, with metadata listing the offsets finished.
func awaitFinishedCommitted(t *testing.T, adm *kadm.Client, group, topic string, at int64, finished []int64) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		o, ok := offs.Lookup(topic, 0)
		if !ok {
			return fmt.Errorf("no offset committed")
		}
		if got := sluice.FinishedInMetadata(o.At, o.Metadata); o.At != at || !slices.Equal(got, finished) {
			return fmt.Errorf("committed offset %d listing %v as finished, want %d listing %v", o.At, got, at, finished)
		}
		return nil
	})
}
