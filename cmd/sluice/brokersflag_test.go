package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// An empty --brokers, such as one from an unset variable, is an error: it
// neither starts the embedded broker nor runs anywhere.
func TestAnEmptyBrokersFlagIsAnErrorNotTheEmbeddedBroker(t *testing.T) {
	for _, args := range [][]string{
		{"run", "wordcount"},
		{"run", "adtrack", "--stats-addr", "127.0.0.1:0"},
		{"run", "logdrain", "--listen", "127.0.0.1:0", "--routes-addr", "127.0.0.1:0", "--monitor-addr", ""},
		{"run", "export", "--sink", "file:" + t.TempDir()},
		{"run", "replay", "--target", "http://127.0.0.1:1", "--metrics-addr", ""},
		{"demo", "--http", "127.0.0.1:0", "--monitor-addr", ""},
		{"demo", "adtrack", "--stats-addr", "127.0.0.1:0", "--networks-addr", "127.0.0.1:0"},
		{"demo", "logdrain", "--listen", "127.0.0.1:0", "--routes-addr", "127.0.0.1:0", "--target-addr", "127.0.0.1:0", "--monitor-addr", ""},
	} {
		for _, brokers := range []string{"", " ", "kafka-1:9092,,kafka-2:9092"} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := run(ctx, append(args, "--addr", "127.0.0.1:0", "--in-memory", "--brokers", brokers)...)
			cancel()
			if err == nil || !strings.HasPrefix(err.Error(), "--brokers") {
				t.Errorf("%v --brokers %q: got %v, want an error naming --brokers", args, brokers, err)
			}
			if out != "" {
				t.Errorf("%v --brokers %q: printed %q before refusing", args, brokers, out)
			}
		}
	}
}
