package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
)

func TestRunWordCountCountsWordsSentWithAnyClient(t *testing.T) {
	for _, store := range []string{"memory", "table"} {
		t.Run(store, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			out := &lockedBuffer{ch: make(chan string, 16)}
			cmd := newRootCmd()
			cmd.SetArgs([]string{"run", "wordcount", "--addr", "127.0.0.1:0", "--in-memory", "--store", store,
				"--state-dir", t.TempDir(), "--batch-wait", "100ms"})
			cmd.SetOut(out)
			done := make(chan error, 1)
			go func() { done <- cmd.ExecuteContext(ctx) }()
			var addr string
			select {
			case line := <-out.ch:
				m := regexp.MustCompile(`broker\s+(\S+)`).FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("unexpected first line %q", line)
				}
				addr = m[1]
			case err := <-done:
				t.Fatalf("wordcount exited: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("wordcount did not start")
			}

			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(),
				kgo.ConsumeTopics("word-counts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			defer pcancel()
			for _, line := range []string{"the quick brown fox", "jumps over the lazy dog"} {
				if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "words", Value: []byte(line)}).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
			}
			var texts []string
			for len(texts) < 9 {
				fs := cl.PollFetches(pctx)
				if pctx.Err() != nil {
					t.Fatalf("read %d of 9 texts: %v", len(texts), texts)
				}
				fs.EachRecord(func(r *kgo.Record) { texts = append(texts, string(r.Value)) })
			}
			slices.Sort(texts)
			want := []string{"brown has been seen 0 times", "dog has been seen 0 times", "fox has been seen 0 times",
				"jumps has been seen 0 times", "lazy has been seen 0 times", "over has been seen 0 times",
				"quick has been seen 0 times", "the has been seen 0 times", "the has been seen 1 times"}
			if !slices.Equal(texts, want) {
				t.Fatalf("texts:\n%s\nwant:\n%s", strings.Join(texts, "\n"), strings.Join(want, "\n"))
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("wordcount stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("wordcount did not stop")
			}
		})
	}
}

func TestRunWordCountRejectsAnUnknownStore(t *testing.T) {
	_, err := run(context.Background(), "run", "wordcount", "--addr", "127.0.0.1:0", "--in-memory", "--store", "floppy")
	if err == nil || !strings.Contains(err.Error(), `store "floppy": want memory, table or redis://host:port`) {
		t.Fatalf("got %v", err)
	}
}

func TestRunSaysWhichFlagGetsPastABrokerThatHoldsTheAddressOrTheDataDir(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(t.Context(), broker.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, c := range []struct {
		args      []string
		want, not string
		cause     string
	}{
		{[]string{"--addr", b.Addrs()[0], "--in-memory"}, "pass --addr", "--data-dir", "address"},
		{[]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, "pass --data-dir", "--addr", "data dir"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := run(ctx, append([]string{"run", "wordcount", "--state-dir", t.TempDir()}, c.args...)...)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.cause) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.not) {
			t.Errorf("%v: got %v, want an error about the %s that says %q and not %q", c.args, err, c.cause, c.want, c.not)
		}
	}
}
