package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/internal/kafka"
)

// startTestBroker starts an in-memory embedded broker for one test and
// returns its address.
func startTestBroker(t *testing.T) string {
	t.Helper()
	b, err := broker.Start(t.Context())
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()[0]
}

// sluiceCLI runs the command line against addr with stdin and returns what
// it wrote to stdout and stderr.
func sluiceCLI(t *testing.T, addr, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(append(args, "--brokers", addr))
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// mustCLI runs the command line and fails the test if it fails.
func mustCLI(t *testing.T, addr string, args ...string) string {
	t.Helper()
	out, errOut, err := sluiceCLI(t, addr, "", args...)
	if err != nil {
		t.Fatalf("sluice %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fields splits each line of out into its whitespace-separated fields.
func fields(out string) [][]string {
	var rows [][]string
	for line := range strings.Lines(out) {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

// row returns the fields of the first line of out whose first field is
// first, or nil.
func row(out, first string) []string {
	for _, f := range fields(out) {
		if len(f) > 0 && f[0] == first {
			return f
		}
	}
	return nil
}

func TestTopicsCreateListDescribeDelete(t *testing.T) {
	addr := startTestBroker(t)
	out := mustCLI(t, addr, "topics", "create", "orders", "--partitions", "3")
	if out != "created topic orders: 3 partitions, replication 1\n" {
		t.Errorf("create: %q", out)
	}
	mustCLI(t, addr, "topics", "create", "orders-table", "--partitions", "2", "--compact", "--config", "retention.ms=86400000")
	if _, _, err := sluiceCLI(t, addr, "", "topics", "create", "orders"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("creating an existing topic: %v, want an error saying it exists", err)
	}
	if _, _, err := sluiceCLI(t, addr, "", "topics", "create", "bad", "--config", "retention.ms"); err == nil || !strings.Contains(err.Error(), "key=value") {
		t.Errorf("a config without =: %v, want an error asking for key=value", err)
	}
	if _, _, err := sluiceCLI(t, addr, "", "topics", "create", "bad", "--config", "cleanup.policy=compacted"); err == nil || !strings.Contains(err.Error(), "cleanup.policy") {
		t.Errorf("a config value Kafka refuses: %v, want an error naming the config", err)
	}
	for _, name := range []string{"", ".", "..", "bad name", "a/b", "a:b", strings.Repeat("x", 250)} {
		if _, _, err := sluiceCLI(t, addr, "", "topics", "create", name); err == nil || !strings.Contains(err.Error(), "topic name") {
			t.Errorf("create %q: %v, want an error about the topic name", name, err)
		}
	}

	out = mustCLI(t, addr, "topics", "list")
	if got, want := fields(out), [][]string{
		{"TOPIC", "PARTITIONS", "REPLICATION", "CLEANUP"},
		{"orders", "3", "1", "delete"},
		{"orders-table", "2", "1", "compact"},
	}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("list:\n%s", out)
	}

	mustCLI(t, addr, "produce", "orders-table", "--partition", "1", "--file", writeFile(t, "a\nb\n"))
	out = mustCLI(t, addr, "topics", "describe", "orders-table", "--sample", "0")
	for first, want := range map[string][]string{
		"partitions": {"partitions", "2"},
		"cleanup":    {"cleanup", "compact", "(compacted:", "at", "least", "the", "latest", "record", "of", "each", "key", "is", "kept)"},
		"retention":  {"retention", "time:", "1d,", "size:", "unlimited"},
		"configs":    {"configs", "cleanup.policy=compact,", "retention.ms=86400000"},
		"PARTITION":  {"PARTITION", "LEADER", "START", "END", "RECORDS"},
		"0":          {"0", "0", "0", "0", "0"},
		"1":          {"1", "0", "0", "2", "2"},
	} {
		if got := row(out, first); !slices.Equal(got, want) {
			t.Errorf("describe: line %q is %q, want %q\n%s", first, got, want, out)
		}
	}
	if strings.Contains(out, "traffic") {
		t.Errorf("--sample 0 measured traffic:\n%s", out)
	}
	if _, _, err := sluiceCLI(t, addr, "", "topics", "describe", "orders-table", "--sample", "-1s"); err == nil || !strings.Contains(err.Error(), "--sample -1s") {
		t.Errorf("describe --sample -1s: %v, want an error naming the flag", err)
	}

	if _, _, err := sluiceCLI(t, addr, "", "topics", "delete", "orders"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("delete without --yes: %v, want an error asking for --yes", err)
	}
	if out := mustCLI(t, addr, "topics", "delete", "orders", "--yes"); out != "deleted topic orders\n" {
		t.Errorf("delete: %q", out)
	}
	if _, _, err := sluiceCLI(t, addr, "", "topics", "describe", "orders"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("describe a deleted topic: %v, want an error saying it does not exist", err)
	}
	if got := fields(mustCLI(t, addr, "topics", "list")); len(got) != 2 || got[1][0] != "orders-table" {
		t.Errorf("list after delete: %q", got)
	}
}

func TestTopicsDescribeMeasuresTraffic(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "clicks", "--partitions", "2")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("clicks"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() {
		// Produce ten-byte records and let a group commit past them while
		// the traffic is measured.
		for i := 0; ctx.Err() == nil; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("click-%04d", i%10000))}).FirstErr(); err != nil {
				return
			}
			var offsets kadm.Offsets
			for p := range int32(2) {
				offsets.AddOffset("clicks", p, int64(i/2), -1)
			}
			if _, err := kadm.NewClient(cl).CommitOffsets(ctx, "clickers", offsets); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	var f connFlags
	f.brokers = []string{addr}
	f.timeout = 10 * time.Second
	adm, acl, err := f.admin()
	if err != nil {
		t.Fatal(err)
	}
	defer acl.Close()
	for {
		commits, err := groupCommits(t.Context(), adm, "clicks")
		if err != nil {
			t.Fatal(err)
		}
		if len(commits) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ends, err := listOffsets(t.Context(), adm.ListEndOffsets, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := measureTraffic(t.Context(), &f, adm, acl, "clicks", ends, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tr.msgsIn <= 0 || !near(tr.bytesIn, tr.msgsIn*10) {
		t.Errorf("in: %.1f messages/s, %.1f bytes/s; want more than none, 10 bytes each", tr.msgsIn, tr.bytesIn)
	}
	if tr.groups != 1 || (tr.msgsOut <= 0 || !near(tr.bytesOut, tr.msgsOut*10)) {
		t.Errorf("out: %d groups, %.1f messages/s, %.1f bytes/s; want more than none, 10 bytes each", tr.groups, tr.msgsOut, tr.bytesOut)
	}
}

// near reports whether a and b are equal but for rounding.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func TestProduceFromAFileThenTailItBack(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "events", "--partitions", "3")
	input := "user-1:{\"n\":1}\nuser-4:{\"n\":2}\n\nalice:{\"n\":3}\r\nuser-1:tab\there\xff:end\n"
	out, errOut, err := sluiceCLI(t, addr, "", "produce", "events", "--file", writeFile(t, input),
		"--key-separator", ":", "--header", "source=test", "--header", "run=1", "--progress")
	if err != nil {
		t.Fatalf("produce: %v\n%s", err, errOut)
	}
	if !regexp.MustCompile(`^4 records to events in \S+\n$`).MatchString(out) {
		t.Errorf("produce summary %q", out)
	}
	if !strings.Contains(errOut, "100%") {
		t.Errorf("--progress showed no finished bar: %q", errOut)
	}

	// Keys land where sluice places them, each partition in order.
	type rec struct{ key, value string }
	records := []rec{{"user-1", `{"n":1}`}, {"user-4", `{"n":2}`}, {"alice", `{"n":3}`}, {"user-1", "tab\there\xff:end"}}
	next := map[int32]int{}
	var want []string
	offsetOf := map[string]int{}
	for _, r := range records {
		p := kafka.KeyPartition([]byte(r.key), 3)
		want = append(want, fmt.Sprintf("events %d %d %d %s", p, next[p], len(r.value), escapePrefix([]byte(r.value), 80)))
		offsetOf[r.value] = next[p]
		next[p]++
	}
	out = mustCLI(t, addr, "tail", "events", "--from", "beginning")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tail:\n%s\nwant (in any order across partitions):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Contains(got, fmt.Sprintf("events %d %d 13 tab\\there\\xff:end", kafka.KeyPartition([]byte("user-1"), 3), offsetOf["tab\there\xff:end"])) {
		t.Errorf("the value with a tab and an invalid byte is not escaped as expected:\n%s", out)
	}

	p1 := kafka.KeyPartition([]byte("user-1"), 3)
	out = mustCLI(t, addr, "tail", "events", "--from", "beginning", "--partition", fmt.Sprint(p1), "--format", "json", "--max-bytes", "3")
	var lines []string
	for line := range strings.Lines(out) {
		// The timestamp is the time of writing; check it is there, then
		// compare the rest exactly.
		ts := regexp.MustCompile(`"timestamp":"[^"]+",`)
		if !ts.MatchString(line) {
			t.Errorf("no timestamp in %s", line)
		}
		lines = append(lines, ts.ReplaceAllString(line, ""))
	}
	wantJSON := []string{
		fmt.Sprintf(`{"topic":"events","partition":%d,"offset":0,"key":"user-1","value":"{\"n\":1}","headers":{"run":"1","source":"test"}}`+"\n", p1),
		fmt.Sprintf(`{"topic":"events","partition":%d,"offset":1,"key":"user-1","value":"dGFiCWhlcmX/OmVuZA==","value_base64":true,"headers":{"run":"1","source":"test"}}`+"\n", p1),
	}
	if !slices.Equal(lines, wantJSON) {
		t.Errorf("tail --format json:\n%s\nwant:\n%s", strings.Join(lines, ""), strings.Join(wantJSON, ""))
	}

	out = mustCLI(t, addr, "tail", "events", "--from", "end-1", "--partition", fmt.Sprint(p1), "--max-bytes", "3")
	if want := fmt.Sprintf("events %d 1 13 tab\n", p1); out != want {
		t.Errorf("tail --from end-1 --max-bytes 3: %q, want %q", out, want)
	}
	if out := mustCLI(t, addr, "tail", "events", "--from", "beginning", "--count", "2"); strings.Count(out, "\n") != 2 {
		t.Errorf("tail --count 2 printed:\n%s", out)
	}
	if out, _, err := sluiceCLI(t, addr, "", "tail", "events", "--from", "beginning", "--partition", "-2"); err == nil || !strings.Contains(err.Error(), "--partition -2") {
		t.Errorf("tail --partition -2: %v, printed:\n%s\nwant an error naming the flag", err, out)
	}
	out, errOut, err = sluiceCLI(t, addr, "", "tail", "events")
	if err != nil || out != "" || !strings.Contains(errOut, "-f") {
		t.Errorf("tail from the end without -f: %q, %q, %v; want nothing and a hint about -f", out, errOut, err)
	}
	if out := mustCLI(t, addr, "tail", "events", "--from", time.Now().Add(time.Hour).Format(time.RFC3339)); out != "" {
		t.Errorf("tail from an hour ahead printed:\n%s", out)
	}
	if out := mustCLI(t, addr, "tail", "events", "--from", "0"); strings.Count(out, "\n") != 4 {
		t.Errorf("tail from unix ms 0 printed:\n%s", out)
	}
	if _, _, err := sluiceCLI(t, addr, "", "tail", "events", "--from", "yesterday"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("tail --from yesterday: %v, want an error naming --from", err)
	}
}

func TestProduceFromStdinWritesRecordsWithoutKeys(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "single", "--partitions", "1")
	out, _, err := sluiceCLI(t, addr, "plain line\n", "produce", "single", "--key-separator", "=")
	if err != nil || !strings.HasPrefix(out, "1 records to single in ") {
		t.Fatalf("produce: %q, %v", out, err)
	}
	out = mustCLI(t, addr, "tail", "single", "--from", "beginning", "--format", "json")
	if !strings.Contains(out, `"key":null,"value":"plain line"`) {
		t.Errorf("a line without the separator: %s", out)
	}
	if _, _, err := sluiceCLI(t, addr, "x\n", "produce", "missing"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("produce to a missing topic: %v", err)
	}
}

func TestProduceStopsAtTheFirstInvalidJSONLine(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "docs", "--partitions", "1")
	file := writeFile(t, "{\"a\":1}\n{\"a\":2}\nnot json\n{\"a\":4}\n")
	out, _, err := sluiceCLI(t, addr, "", "produce", "docs", "--json", "--file", file)
	if err == nil {
		t.Fatalf("produce of invalid JSON succeeded: %q", out)
	}
	for _, want := range []string{"line 3: invalid JSON", "2 records before it were written", "nothing from line 3 on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	out = mustCLI(t, addr, "tail", "docs", "--from", "beginning")
	if want := "docs 0 0 7 {\"a\":1}\ndocs 0 1 7 {\"a\":2}\n"; out != want {
		t.Errorf("topic holds:\n%s\nwant:\n%s", out, want)
	}
}

// joinAndCommit joins group as a member consuming topic, and once it has
// been assigned the partitions, commits the offsets given.
func joinAndCommit(t *testing.T, addr, group, topic string, commits map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("visits-reader"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := cl.PollFetches(ctx).Err0(); err != nil {
		t.Fatalf("poll: %v", err)
	}
	offsets := map[string]map[int32]kgo.EpochOffset{topic: {}}
	for p, o := range commits {
		offsets[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var commitErr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
	})
	if commitErr != nil {
		t.Fatalf("commit: %v", commitErr)
	}
}

func TestGroupsAndLagOfAGroupThatCommitted(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "visits", "--partitions", "2")
	mustCLI(t, addr, "produce", "visits", "--partition", "0", "--file", writeFile(t, "1\n2\n3\n4\n5\n"))
	mustCLI(t, addr, "produce", "visits", "--partition", "1", "--file", writeFile(t, "1\n2\n3\n"))
	joinAndCommit(t, addr, "visitors", "visits", map[int32]int64{0: 3, 1: 3})

	out := mustCLI(t, addr, "groups", "list")
	if got := row(out, "visitors"); len(got) != 5 || got[1] != "Stable" || got[2] != "consumer" || got[4] != "1" {
		t.Errorf("groups list:\n%s", out)
	}

	out = mustCLI(t, addr, "groups", "describe", "visitors")
	if got := row(out, "state"); !slices.Equal(got, []string{"state", "Stable"}) {
		t.Errorf("describe: state %q\n%s", got, out)
	}
	var member string
	for _, f := range fields(out) {
		if len(f) == 4 && f[1] == "visits-reader" {
			member = f[0]
			if f[3] != "visits[0,1]" {
				t.Errorf("member assigned %q, want visits[0,1]", f[3])
			}
		}
	}
	if member == "" {
		t.Fatalf("describe lists no member with client visits-reader:\n%s", out)
	}
	for _, want := range [][]string{
		{"TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"},
		{"visits", "0", "3", "5", "2", member},
		{"visits", "1", "3", "3", "0", member},
		{"total", "lag", "2"},
	} {
		if !slices.ContainsFunc(fields(out), func(f []string) bool { return slices.Equal(f, want) }) {
			t.Errorf("describe has no line %q:\n%s", want, out)
		}
	}

	out = mustCLI(t, addr, "lag", "visitors")
	if got, want := fields(out), [][]string{
		{"TOPIC", "PARTITION", "COMMITTED", "END", "LAG"},
		{"visits", "0", "3", "5", "2"},
		{"visits", "1", "3", "3", "0"},
		{"total", "lag", "2"},
	}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("lag:\n%s", out)
	}
	if _, _, err := sluiceCLI(t, addr, "", "lag", "visitors", "--threshold", "2"); err != nil {
		t.Errorf("lag at the threshold: %v", err)
	}
	out, _, err := sluiceCLI(t, addr, "", "lag", "visitors", "--threshold", "1", "--topic", "visits")
	var coded *exitError
	if !errors.As(err, &coded) || coded.ExitCode() != 2 || !strings.Contains(err.Error(), "above the threshold 1") {
		t.Errorf("lag above the threshold: %v, want exit code 2 and a message", err)
	}
	if !strings.Contains(out, "total lag 2") {
		t.Errorf("lag above the threshold printed no lag:\n%s", out)
	}
	if _, _, err := sluiceCLI(t, addr, "", "lag", "visitors", "--topic", "other"); err == nil || errors.As(err, &coded) {
		t.Errorf("lag of a topic the group does not read: %v, want an error with exit code 1", err)
	}
	if _, _, err := sluiceCLI(t, addr, "", "lag", "nobody"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("lag of a missing group: %v, want an error saying it does not exist", err)
	}
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	var check func(cmd *cobra.Command)
	check = func(cmd *cobra.Command) {
		if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
			return
		}
		if cmd.Short == "" || cmd.Example == "" {
			t.Errorf("%s: short help %q, example %q; want both", cmd.CommandPath(), cmd.Short, cmd.Example)
		}
		for _, sub := range cmd.Commands() {
			check(sub)
		}
	}
	check(newRootCmd())
	out, err := run(context.Background(), "tail", "--help")
	if err != nil || !strings.Contains(out, "--from") || !strings.Contains(out, "--tls-ca") || !strings.Contains(out, "Examples:") {
		t.Errorf("tail --help: %v\n%s", err, out)
	}
}

func TestLagAboveTheThresholdExitsWithCode2(t *testing.T) {
	if got := exitCode(&exitError{code: lagExceeded, err: errors.New("behind")}); got != 2 {
		t.Errorf("exit code %d, want 2", got)
	}
	if got := exitCode(fmt.Errorf("wrapped: %w", &exitError{code: 2, err: errors.New("behind")})); got != 2 {
		t.Errorf("exit code of a wrapped error %d, want 2", got)
	}
	if got := exitCode(errors.New("broken")); got != 1 {
		t.Errorf("exit code %d, want 1", got)
	}
}

func TestTailFollowsNewRecords(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "feed", "--partitions", "1")
	mustCLI(t, addr, "produce", "feed", "--file", writeFile(t, "first\n"))
	done := make(chan string, 1)
	go func() {
		out, _, err := sluiceCLI(t, addr, "", "tail", "feed", "--from", "beginning", "-f", "--count", "2")
		if err != nil {
			out = err.Error()
		}
		done <- out
	}()
	// Written while tail follows, or before it started: either way it is
	// the second record from the beginning.
	mustCLI(t, addr, "produce", "feed", "--file", writeFile(t, "second\n"))
	select {
	case out := <-done:
		if want := "feed 0 0 5 first\nfeed 0 1 6 second\n"; out != want {
			t.Errorf("tail -f: %q, want %q", out, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tail -f did not stop after --count records")
	}
}

func TestInterruptedProduceSaysHowManyRecordsItWrote(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "typed", "--partitions", "1")
	stdin, typing := io.Pipe()
	defer typing.Close()
	ctx, interrupt := context.WithCancel(t.Context())
	defer interrupt()
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetArgs([]string{"produce", "typed", "--brokers", addr})
		cmd.SetIn(stdin)
		cmd.SetOut(io.Discard)
		done <- cmd.ExecuteContext(ctx)
	}()
	if _, err := io.WriteString(typing, "one\n"); err != nil {
		t.Fatal(err)
	}
	// Wait until the line is written, then interrupt while produce waits
	// for the next one.
	mustCLI(t, addr, "tail", "typed", "--from", "beginning", "-f", "--count", "1")
	interrupt()
	select {
	case err := <-done:
		if err == nil || err.Error() != "interrupted after line 1: 1 records written to typed" {
			t.Errorf("interrupted produce: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("produce did not stop when interrupted")
	}
}

// A --from time before 1970, in milliseconds or RFC 3339, is before every
// record: tail starts at the first one. Kafka gives negative times a
// meaning of their own (-1 the end, -2 the beginning), which tail must not
// take on.
func TestTailFromATimeBefore1970StartsAtTheFirstRecord(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "old", "--partitions", "2")
	if _, errOut, err := sluiceCLI(t, addr, "a:1\nb:2\nc:3\n", "produce", "old", "--key-separator", ":"); err != nil {
		t.Fatalf("produce: %v\n%s", err, errOut)
	}
	for _, from := range []string{"-1", "-2", "-3", "-86400000", "1969-12-31T23:59:59.999Z", "1900-01-01T00:00:00Z"} {
		if out := mustCLI(t, addr, "tail", "old", "--from", from); strings.Count(out, "\n") != 3 {
			t.Errorf("tail --from %s printed:\n%s\nwant the 3 records", from, out)
		}
	}
	if from, err := replayFrom("-1", time.Now()); err != nil || !from.Equal(time.UnixMilli(0)) {
		t.Errorf("replay --from -1: %v, %v; want the start of 1970", from, err)
	}
}

// An empty topic or group, or a topic name Kafka refuses, is an error that
// names the argument, given before anything is asked of the brokers.
func TestEmptyAndInvalidNamesAreClearErrors(t *testing.T) {
	const nowhere = "127.0.0.1:1" // nothing listens: the check must come first
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", ""}, "sluice tail: TOPIC: topic name is empty"},
		{[]string{"tail", "a/b"}, `sluice tail: TOPIC: topic name "a/b" holds '/'`},
		{[]string{"produce", ""}, "sluice produce: TOPIC: topic name is empty"},
		{[]string{"topics", "describe", ""}, "sluice topics describe: TOPIC: topic name is empty"},
		{[]string{"topics", "create", ""}, "sluice topics create: TOPIC: topic name is empty"},
		{[]string{"topics", "create", ".."}, `sluice topics create: TOPIC: topic name ".." is refused by Kafka`},
		{[]string{"topics", "delete", "orders", "", "--yes"}, "sluice topics delete: TOPIC: topic name is empty"},
		{[]string{"topics", "delete", "a b", "--yes"}, `sluice topics delete: TOPIC: topic name "a b" holds ' '`},
		{[]string{"groups", "describe", ""}, "sluice groups describe: GROUP is empty"},
		{[]string{"lag", ""}, "sluice lag: GROUP is empty"},
	} {
		_, _, err := sluiceCLI(t, nowhere, "", append(tc.args, "--timeout", "1s")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sluice %q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// A threshold below -1 is refused, before the brokers are asked: taken as
// "never", a health check would never fail.
func TestLagRefusesAThresholdBelowMinusOne(t *testing.T) {
	_, _, err := sluiceCLI(t, "127.0.0.1:1", "", "lag", "g", "--threshold", "-5", "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "--threshold -5: want a number of records, or -1 for never") {
		t.Errorf("lag --threshold -5: %v", err)
	}
}

// A file that cannot be read names the line it failed at, the first, in
// both places the error gives it.
func TestProduceFromAnUnreadableFileNamesTheLineItFailedAt(t *testing.T) {
	addr := startTestBroker(t)
	mustCLI(t, addr, "topics", "create", "docs", "--partitions", "1")
	_, _, err := sluiceCLI(t, addr, "", "produce", "docs", "--file", t.TempDir())
	if err == nil {
		t.Fatal("produce from a directory succeeded")
	}
	for _, want := range []string{"read line 1:", "the 0 records before it were written", "nothing from line 1 on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
