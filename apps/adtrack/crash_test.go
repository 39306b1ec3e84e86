package adtrack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// What TestRunExactlyOnceThroughASIGKILLYieldsTheScriptedPostbacks tells
// the pipeline process it starts; scenarioEnvBrokers is what makes
// TestScenarioWorker run.
const (
	scenarioEnvBrokers   = "ADTRACK_SCENARIO_BROKERS"
	scenarioEnvState     = "ADTRACK_SCENARIO_STATE"
	scenarioEnvPostbacks = "ADTRACK_SCENARIO_POSTBACKS"
)

// TestScenarioWorker is the pipeline, every group exactly once, that
// TestRunExactlyOnceThroughASIGKILLYieldsTheScriptedPostbacks runs in a
// process of its own and kills. It is skipped unless that test started it.
func TestScenarioWorker(t *testing.T) {
	brokers := os.Getenv(scenarioEnvBrokers)
	if brokers == "" {
		t.Skip("the process TestRunExactlyOnceThroughASIGKILLYieldsTheScriptedPostbacks kills")
	}
	// The test holds the other end of stdin: EOF means it is gone, and
	// this process must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	ps, err := LoadPostbacks(os.Getenv(scenarioEnvPostbacks))
	if err != nil {
		t.Fatal(err)
	}
	state := os.Getenv(scenarioEnvState)
	err = Run(context.Background(), Config{
		Brokers: strings.Split(brokers, ","), Postbacks: ps, StatsAddr: "127.0.0.1:0",
		Sender:  scenarioSender(), // exactly once, Run's default
		Storage: func(group string) store.Builder { return pebble.Builder(filepath.Join(state, group)) },
		// The restarted process takes over its predecessor's partitions
		// at once and fences the transactions it left open.
		Options: []sluice.ProcessorOpt{sluice.InstanceID("scenario"), sluice.SessionTimeout(6 * time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startScenarioWorker starts TestScenarioWorker in a process of its own.
func startScenarioWorker(t *testing.T, brokers []string, state, postbacks string) *exec.Cmd {
	t.Helper()
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^TestScenarioWorker$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), scenarioEnvBrokers+"="+strings.Join(brokers, ","),
		scenarioEnvState+"="+state, scenarioEnvPostbacks+"="+postbacks)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

// distinctIDs counts the request ids of rs whose path has prefix.
func distinctIDs(rs []seen, prefix string) int {
	ids := map[string]bool{}
	for _, r := range rs {
		if strings.HasPrefix(r.path, prefix) {
			ids[r.header.Get(RequestIDHeader)] = true
		}
	}
	return len(ids)
}

// Exactly once, a pipeline process SIGKILLed in the middle of the scenario
// and started again yields the same postbacks: none lost, and a request
// sent again only as itself, with the same id and content.
func TestRunExactlyOnceThroughASIGKILLYieldsTheScriptedPostbacks(t *testing.T) {
	brokers := startBroker(t)
	good := newHeld(t, http.StatusOK, true)
	dead := newHeld(t, http.StatusServiceUnavailable, false)
	dir := t.TempDir()
	postbacks := filepath.Join(dir, "postbacks.yaml")
	if err := os.WriteFile(postbacks, []byte(fmt.Sprintf(scenarioPostbacks, good.URL, dead.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	first := startScenarioWorker(t, brokers, state, postbacks)

	// The stats as a reader of the committed table sees them.
	view, err := NewStatsView(sluice.Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	viewDone := make(chan error, 1)
	go func() { viewDone <- view.Run(ctx) }()
	defer func() {
		cancel()
		<-viewDone
	}()
	stats := httptest.NewServer(StatsHandler(view))
	defer stats.Close()

	s := newScenario(time.Now().UTC().Truncate(time.Second))
	p := newScenarioProducer(t, brokers)
	p.send(ClicksTopic, s.clicks...)
	waitStored(t, brokers, s.clicks)
	p.send(InAppTopic, s.deadInstall)
	waitFor(t, "dead's first request", func() bool { return len(dead.requests()) >= 1 })
	p.send(InAppTopic, s.installs...)
	// Killed with conversions told to good and one request in flight to
	// dead, its result never written.
	waitFor(t, "good's first conversion request", func() bool { return macRequests(good.requests()) >= 1 })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	dead.release()
	startScenarioWorker(t, brokers, state, postbacks)

	waitFor(t, "good's conversion requests", func() bool { return distinctIDs(good.requests(), "/mac?") >= 4 })
	p.send(InAppTopic, s.pays...)
	waitFor(t, "good's payment request", func() bool { return distinctIDs(good.requests(), "/pay?") >= 1 })
	// The attempt in flight at the kill, then every attempt again.
	waitFor(t, "dead's attempts", func() bool { return len(dead.requests()) >= 1+scenarioSender().Attempts })
	s.waitStats(t, stats.URL, true)
	s.checkGood(t, good.requests(), true)
	s.checkDead(t, dead.requests(), 1+scenarioSender().Attempts)
	g := good.requests()
	t.Logf("good saw %d requests of %d ids, dead %d", len(g), distinctIDs(g, "/"), len(dead.requests()))
}
