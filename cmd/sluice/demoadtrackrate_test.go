package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestDemoAdTrackRefusesARateItCannotSendAt(t *testing.T) {
	for _, rate := range []string{"0", "-1", "NaN", "+Inf", "1e12", "1e-30"} {
		t.Run(rate, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := run(ctx, "demo", "adtrack", "--in-memory", "--addr", "127.0.0.1:0", "--stats-addr", "127.0.0.1:0",
				"--networks-addr", "127.0.0.1:0", "--log-level", "error", "--rate", rate)
			if err == nil || !strings.Contains(err.Error(), "--rate") {
				t.Fatalf("--rate %s: got %v, want an error naming --rate", rate, err)
			}
		})
	}
}
