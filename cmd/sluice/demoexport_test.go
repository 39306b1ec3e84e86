package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
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

func TestDemoExportRefusesRatesAndSharesItCannotUse(t *testing.T) {
	for _, tc := range []struct{ flag, value string }{
		{"--rate", "0"},
		{"--rate", "2000000000"},
		{"--fail-calls", "NaN"},
		{"--fail-calls", "1"},
		{"--reject-lines", "NaN"},
		{"--reject-lines", "-0.1"},
	} {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := run(ctx, "demo", "export", "--addr", "127.0.0.1:0", "--in-memory", "--monitor-addr", "",
				"--state-dir", t.TempDir(), tc.flag, tc.value)
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("%s %s: got %v, want an error naming %s", tc.flag, tc.value, err, tc.flag)
			}
		})
	}
}
