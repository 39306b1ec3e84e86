package wordcount_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/wordcount"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/redistest"
	"github.com/sluice-io/sluice/store/pebble"
)

const partitions = 3

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var vocabulary = strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu")

// sendLines writes n lines of one to five words to the input topic and
// adds their words to want.
func sendLines(t *testing.T, brokers []string, seed uint64, n int, want map[string]int) {
	t.Helper()
	em, err := sluice.NewEmitter(wordcount.Input, codec.String(), sluice.Brokers(brokers...), sluice.TopicDefaults(partitions, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range n {
		words := make([]string, 1+rng.IntN(5))
		for j := range words {
			words[j] = vocabulary[rng.IntN(len(vocabulary))]
			want[words[j]]++
		}
		em.EmitAsync(strconv.Itoa(i), strings.Join(words, "  "), func(err error) {
			if err != nil {
				t.Errorf("send: %v", err)
			}
		})
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// readCounts reads the committed output until it holds total texts, checks
// that no more follow, and returns for each word the counts its texts said,
// in order.
func readCounts(t *testing.T, brokers []string, total int, timeout time.Duration) map[string][]int {
	return readAtLeast(t, brokers, total, true, timeout)
}

// readAtLeast reads the committed output until it holds at least total
// texts; with exact set, no more may follow.
func readAtLeast(t *testing.T, brokers []string, total int, exact bool, timeout time.Duration) map[string][]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(wordcount.Output),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seen := make(map[string][]int)
	n := 0
	for n < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d texts from %s within %v", n, total, wordcount.Output, timeout)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var word string
			var count int
			if _, err := fmt.Sscanf(string(r.Value), "%s has been seen %d times", &word, &count); err != nil || word != string(r.Key) {
				t.Fatalf("output %q (key %q) is not a word count", r.Value, r.Key)
			}
			seen[word] = append(seen[word], count)
			n++
		})
	}
	if !exact {
		return seen
	}
	// Nothing more may follow.
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	if extra := cl.PollFetches(short).NumRecords(); extra > 0 {
		t.Fatalf("%d texts more than the %d words sent", extra, total)
	}
	return seen
}

// checkCounts checks that every word was reported with the counts 0, 1, ...
// up to its number of occurrences, in order, once each.
func checkCounts(t *testing.T, seen map[string][]int, want map[string]int) {
	t.Helper()
	for w, n := range want {
		got := seen[w]
		ok := len(got) == n
		for i := 0; ok && i < n; i++ {
			ok = got[i] == i
		}
		if !ok {
			t.Errorf("word %s occurred %d times, was reported with counts %v", w, n, got)
		}
	}
	for w := range seen {
		if _, ok := want[w]; !ok {
			t.Errorf("word %q was reported but never sent", w)
		}
	}
}

func total(want map[string]int) int {
	n := 0
	for _, c := range want {
		n += c
	}
	return n
}

func run(t *testing.T, cfg wordcount.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wordcount.Run(ctx, cfg) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("word count stopped with error: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func config(b *broker.Broker, store, stateDir string) wordcount.Config {
	return wordcount.Config{
		Brokers:   b.Addrs(),
		Store:     store,
		Storage:   pebble.Builder(stateDir),
		BatchSize: 100,
		BatchWait: 100 * time.Millisecond,
		Options:   []sluice.ProcessorOpt{sluice.TopicDefaults(partitions, 1), sluice.CommitInterval(100 * time.Millisecond)},
	}
}

func TestWordCountReportsEveryWordWithItsCountBefore(t *testing.T) {
	for _, store := range []string{"memory", "table", "redis"} {
		t.Run(store, func(t *testing.T) {
			var rdb *goredis.Client
			if store == "redis" {
				srv := redistest.Start(t)
				rdb = srv.Client(t)
				store = "redis://" + srv.Addr
			}
			b := startBroker(t)
			want := make(map[string]int)
			sendLines(t, b.Addrs(), 1, 300, want)
			run(t, config(b, store, t.TempDir()))
			checkCounts(t, readCounts(t, b.Addrs(), total(want), 30*time.Second), want)
			if rdb == nil {
				return
			}
			for w, n := range want {
				got, err := rdb.Get(context.Background(), wordcount.RedisPrefix+w).Result()
				if err != nil || got != strconv.Itoa(n) {
					t.Errorf("redis %s%s: %q, %v; want %d", wordcount.RedisPrefix, w, got, err, n)
				}
			}
		})
	}
}

// TestWordCountTableContinuesAfterRestart stops the word count and starts it
// again with an empty local store: the counts are restored from the table's
// changelog and go on.
func TestWordCountTableContinuesAfterRestart(t *testing.T) {
	b := startBroker(t)
	want := make(map[string]int)
	sendLines(t, b.Addrs(), 2, 100, want)
	stop := run(t, config(b, "table", t.TempDir()))
	readCounts(t, b.Addrs(), total(want), 30*time.Second)
	stop()

	sendLines(t, b.Addrs(), 3, 100, want)
	run(t, config(b, "table", t.TempDir()))
	checkCounts(t, readCounts(t, b.Addrs(), total(want), 30*time.Second), want)
}

func TestWordCountRejectsAnUnknownStore(t *testing.T) {
	err := wordcount.Run(context.Background(), wordcount.Config{Store: "cassandra"})
	if err == nil || !strings.Contains(err.Error(), "want memory, table or redis://host:port") {
		t.Fatalf("run: %v", err)
	}
}

// A Redis that cannot be reached is an error at start, not at the first
// batch of words.
func TestWordCountFailsAtOnceWhenItsRedisCannotBeReached(t *testing.T) {
	b := startBroker(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = wordcount.Run(ctx, config(b, "redis://"+addr, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "redis://"+addr) {
		t.Fatalf("run: %v, want an error naming the store", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("run failed after %v, want at once", took)
	}
}

// Environment of the word count child process.
const (
	childBrokersEnv = "WORDCOUNT_CHILD_BROKERS"
	childStateEnv   = "WORDCOUNT_CHILD_STATE"
)

// TestWordCountChild is the word count process of
// TestWordCountExactlyOnceAfterSIGKILL; it is skipped unless that test
// started it.
func TestWordCountChild(t *testing.T) {
	brokers := os.Getenv(childBrokersEnv)
	if brokers == "" {
		t.Skip("runs only as the child process of TestWordCountExactlyOnceAfterSIGKILL")
	}
	// The parent holds stdin open: EOF means it is gone.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	cfg := wordcount.Config{
		Brokers:   strings.Split(brokers, ","),
		Store:     "table",
		Storage:   pebble.Builder(os.Getenv(childStateEnv)),
		BatchSize: 50,
		BatchWait: 50 * time.Millisecond,
		Guarantee: sluice.ExactlyOnce,
		Options: []sluice.ProcessorOpt{
			sluice.TopicDefaults(partitions, 1),
			sluice.CommitInterval(100 * time.Millisecond),
			// The restarted process takes over the partitions of the
			// killed one at once, and the killed one's open
			// transaction stops holding readers back soon.
			sluice.InstanceID("wordcount-child"),
			sluice.KafkaOptions(kgo.TransactionTimeout(3 * time.Second)),
		},
	}
	if err := wordcount.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// startChild starts the word count in a child process.
func startChild(t *testing.T, brokers []string, stateDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWordCountChild$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), childBrokersEnv+"="+strings.Join(brokers, ","), childStateEnv+"="+stateDir)
	out, err := os.Create(filepath.Join(t.TempDir(), "child.out"))
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	t.Cleanup(func() {
		_ = w.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = out.Close()
	})
	return cmd
}

// TestWordCountExactlyOnceAfterSIGKILL runs the exactly-once word count in
// a child process, kills it with SIGKILL while it counts, and starts it
// again: readers of committed records see every word reported once per
// occurrence, with the counts 0, 1, 2, ... in order.
func TestWordCountExactlyOnceAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	b := startBroker(t)
	want := make(map[string]int)
	sendLines(t, b.Addrs(), 4, 1000, want)
	stateDir := t.TempDir()
	child := startChild(t, b.Addrs(), stateDir)

	// Keep lines coming while the child counts, so that it is killed
	// with work in hand.
	more := make(map[string]int)
	sending, stopSending := context.WithCancel(context.Background())
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for seed := uint64(100); sending.Err() == nil; seed++ {
			sendLines(t, b.Addrs(), seed, 50, more)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	readAtLeast(t, b.Addrs(), total(want)/2, false, 60*time.Second)
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	time.Sleep(200 * time.Millisecond)
	stopSending()
	<-sent
	for w, n := range more {
		want[w] += n
	}

	startChild(t, b.Addrs(), stateDir)
	seen := readCounts(t, b.Addrs(), total(want), 60*time.Second)
	checkCounts(t, seen, want)
	if len(seen) != len(vocabulary) {
		t.Fatalf("%d words reported, want %d", len(seen), len(vocabulary))
	}
}
