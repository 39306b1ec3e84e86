package main

import (
	"context"
	"strings"
	"testing"
)

func TestRunLogdrainRefusesARedisURLItCannotRead(t *testing.T) {
	_, err := run(context.Background(), "run", "logdrain", "--addr", "127.0.0.1:0", "--in-memory", "--listen", "127.0.0.1:0",
		"--routes-addr", "127.0.0.1:0", "--monitor-addr", "127.0.0.1:0", "--state-dir", t.TempDir(), "--redis-url", "http://not-redis")
	if err == nil || !strings.Contains(err.Error(), "redis mirror:") {
		t.Fatalf("got %v", err)
	}
}
