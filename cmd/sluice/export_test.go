package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/apps/export"
)

func TestRunExportWritesTheLatestValueOfABucketToAFileSink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	out := &lockedBuffer{ch: make(chan string, 16)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "export", "--addr", "127.0.0.1:0", "--in-memory", "--sink", "file:" + dir,
		"--bucket", "1s", "--idle-advance", "200ms", "--file-max-age", "100ms", "--state-dir", t.TempDir()})
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
		t.Fatalf("export exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("export did not start")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const key = "stats/{service:1006}/cinstance:a60/metric:hits/hour:2016010411"
	bucket := time.Now().Truncate(time.Second)
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	for i, v := range []string{"40", "42", "41"} {
		r := &kgo.Record{Topic: export.DefaultInput, Key: []byte(key), Value: []byte(v), Timestamp: bucket.Add(time.Duration(100*(i+1)) * time.Millisecond)}
		if err := cl.ProduceSync(pctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	var ev export.Event
	deadline := time.Now().Add(60 * time.Second)
	for ev.ID == "" {
		if time.Now().After(deadline) {
			t.Fatal("no event in a finished file")
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if line, _, _ := strings.Cut(string(data), "\n"); line != "" {
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ev.Value != 41 || ev.ID != export.EventID(key, bucket.Add(time.Second)) || ev.CInstance != "a60" {
		t.Fatalf("event %+v, want the value 41 of the bucket ending %s", ev, bucket.Add(time.Second))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("export stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("export did not stop")
	}
}

func TestRunExportRejectsAnUnknownSink(t *testing.T) {
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "export", "--addr", "127.0.0.1:0", "--in-memory", "--sink", "s3://bucket"})
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), `--sink "s3://bucket": want file:/dir, http(s)://host/path or kafka:topic`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunExportFlushOfAnExportThatNeverRanFlushesNothing(t *testing.T) {
	var out strings.Builder
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "export", "--addr", "127.0.0.1:0", "--in-memory", "--sink", "file:" + t.TempDir(), "--flush",
		"--state-dir", t.TempDir()})
	cmd.SetOut(&out)
	cmd.SetErr(&strings.Builder{})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "flushed 0 pending events to JSON Lines files in ") {
		t.Fatalf("output %q", out.String())
	}
}

func TestRunExportRefusesAValueBelowOneForAFlagThatNeedsOne(t *testing.T) {
	for _, c := range []struct{ flag, value string }{
		{"--bucket", "0s"},
		{"--file-max-age", "-1s"},
		{"--file-max-age", "0s"},
		{"--file-max-bytes", "-5"},
		{"--idle-advance", "-1s"},
		{"--max-records-per-call", "0"},
		{"--max-events-per-record", "0"},
		{"--max-record-bytes", "0"},
		{"--max-call-bytes", "-1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := run(ctx, "run", "export", "--addr", "127.0.0.1:0", "--in-memory", "--state-dir", t.TempDir(),
			"--sink", "file:"+t.TempDir(), c.flag, c.value)
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), c.flag+" ") {
			t.Errorf("%s %s: got %v, want an error naming the flag", c.flag, c.value, err)
		}
	}
}

func TestRunExportRefusesAnEmptyInputOrGroup(t *testing.T) {
	for _, c := range []struct{ flag, want string }{
		{"--input", "--input: give the topic"},
		{"--group", "--group: give the export group's name"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := run(ctx, "run", "export", "--addr", "127.0.0.1:0", "--in-memory", "--state-dir", t.TempDir(),
			"--sink", "file:"+t.TempDir(), c.flag, "")
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s '': got %v, want %q", c.flag, err, c.want)
		}
	}
}

// A bucket or grace the export group refuses is refused before the broker
// starts and the banner says the export runs.
func TestRunExportRefusesABucketOfPartSecondsBeforeItStarts(t *testing.T) {
	for _, args := range [][]string{
		{"run", "export", "--sink", "file:" + t.TempDir(), "--bucket", "1500ms"},
		{"run", "export", "--sink", "file:" + t.TempDir(), "--grace", "-1ms"},
		{"demo", "export", "--bucket", "1500ms"},
		{"demo", "export", "--bucket", "0s"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := run(ctx, append(args, "--addr", "127.0.0.1:0", "--in-memory", "--state-dir", t.TempDir())...)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "bucket") && !strings.Contains(err.Error(), "grace") {
			t.Errorf("%v: got %v, want the bucket or the grace refused", args, err)
		}
		if out != "" {
			t.Errorf("%v: printed %q before refusing", args, out)
		}
	}
}

// A topic or group name Kafka refuses is refused before the broker starts
// and the banner says the export runs.
func TestRunExportRefusesATopicOrGroupNameKafkaRefusesBeforeItStarts(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sink", "file:" + t.TempDir(), "--input", "stats updates"}, `"stats updates"`},
		{[]string{"--sink", "file:" + t.TempDir(), "--group", "ex port"}, `"ex port"`},
		{[]string{"--sink", "kafka:stats events"}, `"stats events"`},
		{[]string{"--sink", "kafka:stats-updates"}, "stats-updates"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := run(ctx, append([]string{"run", "export", "--addr", "127.0.0.1:0", "--in-memory", "--state-dir", t.TempDir()}, c.args...)...)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error with %s", c.args, err, c.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q before refusing", c.args, out)
		}
	}
}
