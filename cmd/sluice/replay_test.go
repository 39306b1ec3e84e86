package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/apps/logdrain"
)

func TestRunReplaySendsTheRouterLinesSinceFromAndPrintsASummary(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", logdrain.RouterTopic, "--partitions", "3")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	from := time.Now()
	var recs []*kgo.Record
	for _, l := range []struct{ method, path string }{{"GET", "/a"}, {"GET", "/b?page=2"}, {"POST", "/c"}, {"GET", "/health"}} {
		v, err := json.Marshal(logdrain.Record{App: "heroku", ProcID: "router", Router: &logdrain.RouterJSON{Method: l.method, Path: l.path}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: logdrain.RouterTopic, Key: []byte(l.path), Value: v})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []string
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.RequestURI)
		mu.Unlock()
		if r.URL.Path == "/b" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer tg.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{ch: make(chan string, 64)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "replay", "--brokers", addr, "--target", tg.URL, "--from", strconv.FormatInt(from.UnixMilli(), 10),
		"--speed", "0", "--rate", "100", "--exclude", "^/health$", "--metrics-addr", "127.0.0.1:0", "--log-level", "error"})
	cmd.SetOut(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	var metrics string
	for metrics == "" {
		select {
		case line := <-out.ch:
			if m := regexp.MustCompile(`^metrics\s+(http://\S+)`).FindStringSubmatch(line); m != nil {
				metrics = m[1]
			}
		case err := <-done:
			t.Fatalf("replay exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("replay printed no metrics address")
		}
	}
	var lines []string
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for l := range out.ch {
			lines = append(lines, l)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(metrics)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		if strings.Contains(page, `logdrain_replay_requests_total{class="2xx"} 1`) && strings.Contains(page, `logdrain_replay_requests_total{class="4xx"} 1`) &&
			strings.Contains(page, `logdrain_replay_skipped_total{reason="method"} 1`) && strings.Contains(page, `logdrain_replay_skipped_total{reason="path"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never counted the replay:\n%s", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("replay stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("replay did not stop")
	}
	close(out.ch)
	<-collected
	mu.Lock()
	slices.Sort(got)
	mu.Unlock()
	if want := []string{"GET /a", "GET /b?page=2"}; !slices.Equal(got, want) {
		t.Errorf("target got %q, want %q", got, want)
	}
	summary := strings.Join(lines, "")
	if !strings.Contains(summary, "replayed 2 requests: 2xx 1, 3xx 0, 4xx 1, 5xx 0, error 0; skipped 2: method 1, path 1, invalid 0; latency p50 ") {
		t.Errorf("no summary line in %q", summary)
	}
}

func TestReplayFromReadsTimesMillisecondsAndDurationsAgo(t *testing.T) {
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"latest":               {},
		"2026-11-22T04:00:00Z": now.Add(-time.Hour),
		"1795323600000":        time.UnixMilli(1795323600000),
		"15m":                  now.Add(-15 * time.Minute),
		"beginning":            time.UnixMilli(0),
	} {
		got, err := replayFrom(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("--from %s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"end-5", "yesterday", "-5m"} {
		if _, err := replayFrom(in, now); err == nil || !strings.Contains(err.Error(), "--from") {
			t.Errorf("--from %s: err %v, want one naming --from", in, err)
		}
	}
}

func TestRunReplayWantsATarget(t *testing.T) {
	_, err := run(context.Background(), "run", "replay", "--brokers", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), `"target" not set`) {
		t.Fatalf("got %v", err)
	}
}

func TestRunReplayRefusesNoMethodsOrAnEmptyGroup(t *testing.T) {
	for _, c := range []struct{ flag, want string }{
		{"--allow-methods", "--allow-methods: give at least one method"},
		{"--group", "--group: give the consumer group's name"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := run(ctx, "run", "replay", "--addr", "127.0.0.1:0", "--in-memory", "--metrics-addr", "",
			"--target", "http://127.0.0.1:1", c.flag, "")
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s '': got %v, want %q", c.flag, err, c.want)
		}
	}
}
