package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/apps/logdrain"
)

func TestDemoLogdrainServesRouteCountsAndReplaysTheTraffic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{ch: make(chan string, 64)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"demo", "logdrain", "--in-memory", "--addr", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--routes-addr", "127.0.0.1:0", "--monitor-addr", "127.0.0.1:0",
		"--target-addr", "127.0.0.1:0", "--interval", "20ms", "--state-dir", t.TempDir(), "--log-level", "error"})
	cmd.SetOut(out)
	cmd.SetErr(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop")
		}
	}()

	urls := map[string]string{}
	addr := regexp.MustCompile(`^(drain|routes|target|metrics|monitor)\s+(http://\S+)`)
	for len(urls) < 5 {
		select {
		case line := <-out.ch:
			if m := addr.FindStringSubmatch(line); m != nil {
				urls[m[1]] = m[2]
			}
		case err := <-done:
			t.Fatalf("demo exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("demo printed %v, want the drain, routes, target, metrics and monitor addresses", urls)
		}
	}
	go func() {
		for range out.ch {
		}
	}()

	get := func(url string) (int, []byte) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var routes []logdrain.Route
		code, b := get(urls["routes"])
		counted := 0
		if code == http.StatusOK && json.Unmarshal(b, &routes) == nil {
			for _, r := range routes {
				if r.Service.Count > 0 && len(r.Statuses) > 0 {
					counted++
				}
			}
		}
		_, metrics := get(urls["metrics"])
		replayed := regexp.MustCompile(`(?m)^logdrain_replay_requests_total\{class="2xx"\} (\d+)`).FindSubmatch(metrics)
		rejected := regexp.MustCompile(`(?m)^logdrain_rejected_frames_total\{kind="\w+"\} [1-9]`).Find(metrics)
		code, page := get(urls["monitor"])
		if code != http.StatusOK || !strings.Contains(string(page), `src="static/routes.js"`) {
			t.Fatalf("monitor page %s: %d %.300s", urls["monitor"], code, page)
		}
		if counted >= 3 && replayed != nil && string(replayed[1]) != "0" && rejected != nil {
			n, _ := strconv.Atoi(string(replayed[1]))
			t.Logf("%d routes counted, %d requests replayed", counted, n)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: %d routes counted (%s), replayed %q, a rejected frame: %v", counted, b, replayed, rejected != nil)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
