package logdrain_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/broker"
)

// testPartitions is the partition count of the topics the tests create.
const testPartitions = 3

func startBroker(t testing.TB, opts ...broker.Opt) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, opts...)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startDrain serves a drain on loopback until the test ends and returns
// its base URL.
func startDrain(t testing.TB, brokers []string, cfg logdrain.DrainConfig) (string, *logdrain.Drain) {
	t.Helper()
	cfg.Brokers = brokers
	cfg.Logger = testLogger()
	cfg.Options = append(cfg.Options, sluice.TopicDefaults(testPartitions, 1))
	d, err := logdrain.NewDrain(cfg)
	if err != nil {
		t.Fatalf("new drain: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("drain serve: %v", err)
		}
		_ = d.Close()
	})
	return "http://" + ln.Addr().String(), d
}

// request is a POST of a Logplex body.
type request struct {
	path    string // default /logs
	body    []byte
	headers map[string]string
	user    string // basic auth when not empty
	pass    string
}

type answer struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, base string, r request) answer {
	t.Helper()
	a, err := tryPost(base, r)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tryPost(base string, r request) (answer, error) {
	if r.path == "" {
		r.path = "/logs"
	}
	req, err := http.NewRequest(http.MethodPost, base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/logplex-1")
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("post %s: %w", r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// body frames messages as Logplex does, each ending in a newline.
func body(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = logdrain.AppendFrame(b, []byte(m+"\n"))
	}
	return b
}

// routerMsg is a router line of path, with the given connect and service
// times (ms), status and request id.
func routerMsg(path string, connect, service, status int, id string) string {
	return fmt.Sprintf(`<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - at=info method=GET path="%s" host=issuetriage.herokuapp.com request_id=%s fwd="144.76.27.118" dyno=web.2 connect=%dms service=%dms status=%d bytes=36360`,
		path, id, connect, service, status)
}

// The spec's example body: a router line and an app line.
const (
	specRouterMsg = `<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503-3159-4d7c-8287-3ba52d7c44df fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360`
	specAppMsg    = `<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up`
)

func msgCount(n int) map[string]string {
	return map[string]string{"Logplex-Msg-Count": strconv.Itoa(n), "Logplex-Frame-Id": "frame-1"}
}

func newClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// endOffsets returns the sum of the end offsets of topic's partitions: how
// many records it holds.
func endOffsets(t testing.TB, brokers []string, topic string) int64 {
	t.Helper()
	ends, err := kadm.NewClient(newClient(t, brokers)).ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// consume reads topic from the start until it has n records, or fails the
// test after a deadline.
func consume(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records of %s, want %d", len(recs), topic, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch %s: %v", topic, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// waitFor polls cond until it holds or fails the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
