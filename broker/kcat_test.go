package broker

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// kcat runs kcat with args against b, with stdin as its input, and returns
// its output.
func kcat(t *testing.T, b *Broker, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", append([]string{"-b", b.Addrs()[0]}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestBrokerServesKcat checks that a librdkafka client, not only franz-go,
// can list, produce and consume.
func TestBrokerServesKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	const topic = "page-views"
	b := startBroker(t)
	createTopic(t, b, topic, 3, nil)

	meta := kcat(t, b, "", "-L")
	if !strings.Contains(meta, `topic "`+topic+`" with 3 partitions`) {
		t.Errorf("kcat -L does not list %s with 3 partitions:\n%s", topic, meta)
	}

	want := []string{"alice=/home", "bob=/cart", "alice=/checkout", "carol=/home", "bob=/pay"}
	var input strings.Builder
	for _, line := range want {
		k, v, _ := strings.Cut(line, "=")
		input.WriteString(k + ":" + v + "\n")
	}
	kcat(t, b, input.String(), "-P", "-t", topic, "-K:")

	out := kcat(t, b, "", "-C", "-t", topic, "-e", "-o", "beginning", "-f", `%k=%s\n`)
	got := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("kcat consumed %q, want %q", got, want)
	}
}
