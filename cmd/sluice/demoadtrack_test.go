package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDemoAdTrackAttributesInstallsAndServesStats(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{ch: make(chan string, 256)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"demo", "adtrack", "--in-memory", "--addr", "127.0.0.1:0", "--stats-addr", "127.0.0.1:0",
		"--networks-addr", "127.0.0.1:0", "--rate", "50", "--log-level", "error"})
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

	statsLine := regexp.MustCompile(`stats\s+(http://[^/\s]+)/clickstats/`)
	var statsURL string
	printed := make(chan struct{})
	var once sync.Once
	for statsURL == "" {
		select {
		case s := <-out.ch:
			if m := statsLine.FindStringSubmatch(s); m != nil {
				statsURL = m[1]
			}
		case err := <-done:
			t.Fatalf("demo exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("demo printed no stats address")
		}
	}
	// The stats it prints as they change.
	go func() {
		counted := regexp.MustCompile(`clicks [1-9]`)
		for s := range out.ch {
			if counted.MatchString(s) {
				once.Do(func() { close(printed) })
			}
		}
	}()

	get := func(path string) (map[string]int64, error) {
		resp, err := http.Get(statsURL + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
		var c map[string]int64
		return c, json.NewDecoder(resp.Body).Decode(&c)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, err := get("/attribution")
		var pb map[string]int64
		if err == nil && a["matched"] > 0 && a["unmatched"] > 0 {
			pb, err = get("/pbstats/fastads-install")
			if err == nil && pb["count"] > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no installs attributed, unattributed and told to fastads within 60s: %v %v", a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var clicks int64
	for cl := 1; cl <= demoLinks; cl++ {
		if c, err := get(fmt.Sprintf("/clickstats/%d", cl)); err == nil {
			clicks += c["count"]
		}
	}
	if clicks == 0 {
		t.Error("no clicks counted on any campaign link")
	}
	select {
	case <-printed:
	case <-time.After(30 * time.Second):
		t.Error("no stats line printed")
	}
	if !strings.HasPrefix(statsURL, "http://127.0.0.1:") {
		t.Errorf("stats served on %s, want loopback", statsURL)
	}
}
