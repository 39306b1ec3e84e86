package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRunAdTrackCountsClicksSentWithAnyClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	pbs := filepath.Join(dir, "postbacks.yaml")
	if err := os.WriteFile(pbs, []byte("postbacks:\n  - id: p1\n    network: n\n    event: ist\n    url: \"http://127.0.0.1:1/x?a={{.Params.adid}}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{ch: make(chan string, 64)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "adtrack", "--addr", "127.0.0.1:0", "--in-memory", "--stats-addr", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state"), "--postbacks", pbs, "--log-level", "error"})
	cmd.SetOut(out)
	cmd.SetErr(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	var brokerAddr, statsURL, groups string
	brokerLine := regexp.MustCompile(`broker\s+(\S+)`)
	statsLine := regexp.MustCompile(`stats\s+(http://[^/\s]+)/`)
	groupsLine := regexp.MustCompile(`groups\s+(.*)`)
	for statsURL == "" || groups == "" {
		select {
		case s := <-out.ch:
			if m := brokerLine.FindStringSubmatch(s); m != nil {
				brokerAddr = m[1]
			}
			if m := statsLine.FindStringSubmatch(s); m != nil {
				statsURL = m[1]
			}
			if m := groupsLine.FindStringSubmatch(s); m != nil {
				groups = m[1]
			}
		case err := <-done:
			t.Fatalf("adtrack exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("adtrack did not start")
		}
	}
	go func() {
		for range out.ch {
		}
	}()
	if !strings.Contains(groups, "(exactly-once)") {
		t.Errorf("groups line %q: want the groups exactly once by default", groups)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	click := "/t/click country=DE&device=desktop&device_name=Mac&ip=2986884497&klag=1&platform=mac&ts=" +
		strconv.FormatInt(time.Now().Unix(), 10) + " attr_window_till=2099-01-01T00%3A00%3A00Z&campaign_link_id=46&network=7games&user_id=1"
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "clicks", Value: []byte(click)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(statsURL + "/clickstats/46")
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]int64
		ok := resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&c) == nil && c["count"] == 1
		resp.Body.Close()
		if ok {
			if c["country:DE"] != 1 || c["device:Mac"] != 1 {
				t.Errorf("clickstats %v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the click was not counted: status %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("adtrack stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("adtrack did not stop")
	}
}

func TestRunAdTrackRejectsABadPostbackFileNamingThePostback(t *testing.T) {
	_, err := run(context.Background(), "run", "adtrack", "--addr", "127.0.0.1:0", "--in-memory",
		"--postbacks", filepath.Join("..", "..", "apps", "adtrack", "testdata", "bad-postbacks.yaml"))
	if err == nil || !strings.Contains(err.Error(), `postback "wrong-platform"`) || !strings.Contains(err.Error(), "platform") {
		t.Fatalf("got %v", err)
	}
}
