package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// run runs the command line with args until it returns or ctx is done.
func run(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestVersionPrintsAVersion(t *testing.T) {
	out, err := run(context.Background(), "version")
	if err != nil || !strings.HasPrefix(out, "sluice ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestHelpListsTheCommands(t *testing.T) {
	out, err := run(context.Background(), "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"broker", "demo", "version", "topics", "produce", "tail", "groups", "lag", "--log-level", "--log-format"} {
		if !strings.Contains(out, want) {
			t.Errorf("help does not mention %q:\n%s", want, out)
		}
	}
}

func TestBadLogLevelIsAClearError(t *testing.T) {
	_, err := run(context.Background(), "broker", "--in-memory", "--log-level", "loud")
	if err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("got %v, want an error naming --log-level", err)
	}
}

// lockedBuffer hands each write of a running command to the test.
type lockedBuffer struct {
	ch chan string
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.ch <- string(p)
	return len(p), nil
}

func TestBrokerCommandServesKafkaClients(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{ch: make(chan string, 16)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"broker", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()})
	cmd.SetOut(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	var addr string
	select {
	case line := <-out.ch:
		m := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected first line %q", line)
		}
		addr = m[1]
	case err := <-done:
		t.Fatalf("broker exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("broker did not start")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to the broker: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("broker did not stop")
	}
}
