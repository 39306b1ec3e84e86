package clicks_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/apps/clicks"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

// runClicks runs the app until stop is called, and returns the view's URL.
func runClicks(t *testing.T, brokers []string, stateDir string) (url string, stop func()) {
	t.Helper()
	url, stopErr := startClicks(t, brokers, stateDir)
	return url, func() {
		if err := stopErr(); err != nil {
			t.Fatalf("clicks stopped with error: %v", err)
		}
	}
}

// startClicks is runClicks whose stop returns the app's error.
func startClicks(t *testing.T, brokers []string, stateDir string) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- clicks.Run(ctx, clicks.Config{
			Brokers:  brokers,
			HTTPAddr: "127.0.0.1:0",
			Interval: 5 * time.Millisecond,
			Storage:  pebble.Builder(stateDir),
			Ready:    func(addr net.Addr) { ready <- "http://" + addr.String() },
		})
	}()
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("clicks did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("clicks did not start within 20s")
	}
	return url, func() error {
		cancel()
		return <-done
	}
}

func get(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// clicksOf waits until user has at least min clicks and returns the count.
func clicksOf(t *testing.T, url, user string, min int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, ctype, body := get(t, url+"/"+user)
		if status == http.StatusOK {
			if ctype != "application/json" {
				t.Fatalf("content type %q, want application/json", ctype)
			}
			var u clicks.User
			if err := json.Unmarshal(body, &u); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if u.Clicks >= min {
				return u.Clicks
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %d clicks: last answer %d %s", user, min, status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClickCounterServesGrowingCountsAndContinuesAfterRestart(t *testing.T) {
	dataDir, stateDir := t.TempDir(), t.TempDir()
	start := func() *broker.Broker {
		b, err := broker.Start(context.Background(), broker.DataDir(dataDir))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := start()
	url, stop := runClicks(t, b.Addrs(), stateDir)

	first := clicksOf(t, url, "user-3", 1)
	second := clicksOf(t, url, "user-3", first+3)
	if second <= first {
		t.Fatalf("count did not grow: %d then %d", first, second)
	}
	status, ctype, body := get(t, url+"/nobody")
	var e struct{ Error string }
	if status != http.StatusNotFound || ctype != "application/json" || json.Unmarshal(body, &e) != nil || e.Error == "" {
		t.Fatalf("unknown key: %d %s %s, want 404 with a JSON error", status, ctype, body)
	}
	stop()
	// The view reads from the table, so after the stop the last count is
	// what a restarted run must start from.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = start()
	defer b.Close()
	url, stop = runClicks(t, b.Addrs(), stateDir)
	defer stop()
	resumed := clicksOf(t, url, "user-3", second)
	if resumed < second {
		t.Fatalf("after restart user-3 has %d clicks, fewer than the %d before", resumed, second)
	}
	t.Logf("user-3 clicks before restart: %d, after: %d", second, clicksOf(t, url, "user-3", resumed+1))
}

// TestClickCounterStopsCleanlyWithASpareConnectionOpen: a browser keeps
// spare connections open that never send a request; stopping the app must
// not wait for them and fail.
func TestClickCounterStopsCleanlyWithASpareConnectionOpen(t *testing.T) {
	b, err := broker.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	url, stop := runClicks(t, b.Addrs(), t.TempDir())
	clicksOf(t, url, "user-3", 1)
	spare, err := net.Dial("tcp", url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	stop()
}

func TestClickCounterStopsPromptlyOnceKafkaIsGone(t *testing.T) {
	b, err := broker.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	url, stop := startClicks(t, b.Addrs(), t.TempDir())
	clicksOf(t, url, "user-3", 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // clicks pile up in the emitter
	start := time.Now()
	err = stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stopping took %s with Kafka gone", took)
	}
	// The counts of a write Kafka never answered are given up, and Run
	// says so.
	if err != nil && !strings.Contains(err.Error(), "abandoned by the stop") {
		t.Errorf("clicks stopped with error: %v", err)
	}
}

// TestClickCounterStopsPromptlyWhileKafkaHoldsItsWrites stops the app while
// a write of its counts is in flight: Kafka takes it and never answers, then
// goes. The counts of that write are processed again at the next start, so
// the stop must not wait for it as long as a processor's default stop does.
func TestClickCounterStopsPromptlyWhileKafkaHoldsItsWrites(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // once more, for a test that fails before its close
	release := make(chan struct{})
	defer close(release)
	var (
		hold  atomic.Bool
		table atomic.Pointer[[16]byte] // the changelog's topic ID
	)
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !hold.Load() {
			return nil, nil, false
		}
		for _, topic := range kreq.(*kmsg.ProduceRequest).Topics {
			if id := table.Load(); id != nil && (topic.Topic == clicks.Group+"-table" || topic.TopicID == *id) {
				select {
				case held <- struct{}{}:
				default:
				}
				c.SleepControl(func() { <-release }) // woken by the close of the cluster
			}
		}
		return nil, nil, false
	})
	url, stop := startClicks(t, c.ListenAddrs(), t.TempDir())
	clicksOf(t, url, "user-3", 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	topics, err := kadm.NewClient(cl).ListTopics(t.Context(), clicks.Group+"-table")
	cl.Close()
	if err == nil {
		err = topics.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	id := [16]byte(topics[clicks.Group+"-table"].ID)
	table.Store(&id)
	hold.Store(true)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the app wrote no counts within 10s")
	}
	c.Close()
	start := time.Now()
	err = stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stopping took %s with a write of the counts unanswered", took)
	}
	if err == nil || !strings.Contains(err.Error(), "abandoned by the stop") {
		t.Errorf("clicks stopped with %v, want the error of the counts it gave up", err)
	}
}
