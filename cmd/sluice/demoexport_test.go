package main

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestDemoExportPrintsTheCallsItsFlakySinkTakes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{ch: make(chan string, 1024)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"demo", "export", "--addr", "127.0.0.1:0", "--in-memory", "--bucket", "1s", "--rate", "100",
		"--fail-calls", "0.3", "--reject-lines", "0.1", "--monitor-addr", "127.0.0.1:0", "--state-dir", t.TempDir()})
	cmd.SetOut(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	taken := regexp.MustCompile(`^sink\s+call \d+: \d+ events, \d+ rejected; (\d+) taken so far, e\.g\. stats/\{service:\d+\}\S*@\d{8}T\d{6}Z = \d+ at \d{8} \d\d:\d\d:\d\d`)
	deadline := time.After(90 * time.Second)
	for {
		select {
		case line := <-out.ch:
			if m := taken.FindStringSubmatch(line); m != nil {
				if n, _ := strconv.Atoi(m[1]); n > 0 {
					cancel()
					if err := <-done; err != nil {
						t.Fatalf("demo stopped with %v", err)
					}
					return
				}
			}
		case err := <-done:
			t.Fatalf("demo exited: %v", err)
		case <-deadline:
			t.Fatal("the sink printed no call it took")
		}
	}
}
