package logdrain_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
)

// hit is a request the target received.
type hit struct {
	method, uri string
	at          time.Time
}

// target is a loopback HTTP server that records the requests it gets and
// answers them with handle, 200 when it is nil.
type target struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
}

func startTarget(t *testing.T, handle http.HandlerFunc) *target {
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		tg.hits = append(tg.hits, hit{r.Method, r.RequestURI, time.Now()})
		tg.mu.Unlock()
		if handle != nil {
			handle(w, r)
		}
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) got() []hit {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.hits)
}

// requests returns "METHOD uri" of every hit, sorted.
func (tg *target) requests() []string {
	var rs []string
	for _, h := range tg.got() {
		rs = append(rs, h.method+" "+h.uri)
	}
	slices.Sort(rs)
	return rs
}

// line is a router line to put on the router topic.
type line struct {
	method, path string
	at           time.Time // the line's time; zero for none
	key          string    // default the path
	raw          []byte    // sent as is when set
}

func createRouterTopic(t *testing.T, brokers []string) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, brokers))
	resp, err := adm.CreateTopic(context.Background(), testPartitions, 1, nil, logdrain.RouterTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", logdrain.RouterTopic, err)
	}
}

// produceLines writes router records as the drain does and returns once
// Kafka acknowledged them.
func produceLines(t *testing.T, cl *kgo.Client, lines ...line) {
	t.Helper()
	var recs []*kgo.Record
	for _, l := range lines {
		v := l.raw
		if v == nil {
			rec := logdrain.Record{Priority: 158, Facility: 19, Severity: 6, Version: 1, Hostname: "host", App: "heroku", ProcID: "router",
				StructuredData: []logdrain.SDElementJSON{}, Msg: "at=info method=" + l.method + " path=" + l.path,
				Router: &logdrain.RouterJSON{At: "info", Method: l.method, Path: l.path, Status: 200, Fwd: []string{}}}
			if !l.at.IsZero() {
				rec.Timestamp = l.at.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
			}
			var err error
			if v, err = json.Marshal(rec); err != nil {
				t.Fatal(err)
			}
		}
		key := l.key
		if key == "" {
			key = l.path
		}
		recs = append(recs, &kgo.Record{Topic: logdrain.RouterTopic, Key: []byte(key), Value: v})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce router lines: %v", err)
	}
}

// startReplay runs a replay of brokers' router topic until the test ends.
func startReplay(t *testing.T, brokers []string, cfg logdrain.ReplayConfig) *logdrain.Replayer {
	t.Helper()
	cfg.Brokers = brokers
	cfg.Logger = testLogger()
	cfg.ProcessorOptions = append(cfg.ProcessorOptions, sluice.CommitInterval(100*time.Millisecond))
	r, err := logdrain.NewReplayer(cfg)
	if err != nil {
		t.Fatalf("new replayer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replay run: %v", err)
		}
	})
	return r
}

// handled is how many records r has sent or skipped.
func handled(r *logdrain.Replayer) int64 {
	s := r.Stats()
	n := s.Sent()
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

func TestReplaySendsTheAllowedMethodsAndPathsOfTheLinesToTheTarget(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	from := time.Now()
	produceLines(t, newClient(t, b.Addrs()),
		line{method: "GET", path: "/a?x=1&y=%20"},
		line{method: "HEAD", path: "/b"},
		line{method: "POST", path: "/c"},
		line{method: "delete", path: "/d"},
		line{method: "GET", path: "/e%2Ff"},
		line{method: "GET", path: "//evil.example/x"},
		line{method: "GET", path: "http://evil.example/x"},
		line{raw: []byte(`{"app":"heroku","procid":"router","msg":"no fields"}`), key: "raw"},
	)
	const records = 8

	byDefault := startTarget(t, nil)
	r := startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: byDefault.URL + "/staging/", From: from})
	waitFor(t, "the default replay to handle every record", func() bool { return handled(r) == records })
	want := []string{"GET /staging/a?x=1&y=%20", "GET /staging/e%2Ff", "HEAD /staging/b"}
	if got := byDefault.requests(); !slices.Equal(got, want) {
		t.Errorf("default methods: target got %q, want %q", got, want)
	}
	if s := r.Stats(); s.Requests["2xx"] != 3 || s.Skipped[logdrain.SkipMethod] != 2 || s.Skipped[logdrain.SkipInvalid] != 3 {
		t.Errorf("default methods: stats %+v", s)
	}

	allowing := startTarget(t, nil)
	r = startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: allowing.URL, From: from, Group: "replay-post",
		AllowMethods: []string{"get", "POST", "DELETE"}})
	waitFor(t, "the replay allowing POST to handle every record", func() bool { return handled(r) == records })
	want = []string{"DELETE /d", "GET /a?x=1&y=%20", "GET /e%2Ff", "POST /c"}
	if got := allowing.requests(); !slices.Equal(got, want) {
		t.Errorf("--allow-methods get,POST,DELETE: target got %q, want %q", got, want)
	}
}

func TestReplayFiltersPathsByIncludeThenExclude(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	from := time.Now()
	var lines []line
	for _, p := range []string{"/api/users", "/api/health", "/api/orders/7", "/assets/app.js", "/", "/apiary"} {
		lines = append(lines, line{method: "GET", path: p})
	}
	produceLines(t, newClient(t, b.Addrs()), lines...)

	tg := startTarget(t, nil)
	r := startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: tg.URL, From: from,
		Include: []string{`^/api/`, `^/$`}, Exclude: []string{`health`}})
	waitFor(t, "the replay to handle every record", func() bool { return handled(r) == int64(len(lines)) })
	want := []string{"GET /", "GET /api/orders/7", "GET /api/users"}
	if got := tg.requests(); !slices.Equal(got, want) {
		t.Errorf("target got %q, want %q", got, want)
	}
	if n := r.Stats().Skipped[logdrain.SkipPath]; n != 3 {
		t.Errorf("skipped for their path: %d, want 3", n)
	}
}

func TestReplayKeepsToItsRate(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	from := time.Now()
	const n, perSecond = 50, 20
	var lines []line
	for i := range n {
		lines = append(lines, line{method: "GET", path: "/r/" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	produceLines(t, newClient(t, b.Addrs()), lines...)

	tg := startTarget(t, nil)
	r := startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: tg.URL, From: from, Rate: perSecond, Concurrency: 16})
	waitFor(t, "the replay to send every request", func() bool { return r.Stats().Requests["2xx"] == n })
	hits := tg.got()
	if len(hits) != n {
		t.Fatalf("target got %d requests, want %d", len(hits), n)
	}
	slices.SortFunc(hits, func(a, b hit) int { return a.at.Compare(b.at) })
	// The limiter lets Rate requests a second through, plus its burst of
	// one: a second of arrivals holds no more, with room for requests that
	// the scheduler delayed into it.
	most := 0
	for i := range hits {
		j := i
		for j < len(hits) && hits[j].at.Sub(hits[i].at) < time.Second {
			j++
		}
		most = max(most, j-i)
	}
	if most > perSecond+1+4 {
		t.Errorf("%d requests within one second, want at most about %d", most, perSecond+1)
	}
	// n requests at Rate take at least (n-1)/Rate seconds.
	if span, least := hits[n-1].at.Sub(hits[0].at), time.Duration(float64(n-1)/perSecond*0.9*float64(time.Second)); span < least {
		t.Errorf("%d requests within %v, want at least %v at %d/s", n, span, least, perSecond)
	}
}

func TestReplaySpeedFactorScalesTheSpacingOfTheLinesTimes(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	cl := newClient(t, b.Addrs())
	from := time.Now()
	// Three lines of one partition, 400ms and then 2s apart.
	t0 := time.Date(2016, 5, 4, 4, 57, 12, 0, time.UTC)
	spans := map[float64]time.Duration{}
	gaps := map[float64][2]time.Duration{}
	for i, speed := range []float64{2, 0} {
		prefix := "/speed" + string(rune('a'+i))
		produceLines(t, cl,
			line{method: "GET", path: prefix + "/1", at: t0, key: prefix},
			line{method: "GET", path: prefix + "/2", at: t0.Add(400 * time.Millisecond), key: prefix},
			line{method: "GET", path: prefix + "/3", at: t0.Add(2400 * time.Millisecond), key: prefix},
		)
		tg := startTarget(t, nil)
		r := startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: tg.URL, From: from, Speed: speed, Group: "replay" + prefix,
			Include: []string{"^" + prefix + "/"}})
		waitFor(t, "the replay to send the three requests", func() bool { return r.Stats().Requests["2xx"] == 3 })
		at := map[string]time.Time{}
		for _, h := range tg.got() {
			at[h.uri] = h.at
		}
		t1, t2, t3 := at[prefix+"/1"], at[prefix+"/2"], at[prefix+"/3"]
		spans[speed] = t3.Sub(t1)
		gaps[speed] = [2]time.Duration{t2.Sub(t1), t3.Sub(t2)}
	}
	// At speed 2 the 2.4s of the lines take 1.2s: the third request waits
	// for its time, and is well ahead of the lines' own spacing.
	if s := spans[2]; s < 1100*time.Millisecond || s > 2200*time.Millisecond {
		t.Errorf("speed 2: first to last request %v, want about 1.2s (half of 2.4s)", s)
	}
	// The second gap is five times the first, as in the lines.
	if g := gaps[2]; g[1] < 2*g[0] {
		t.Errorf("speed 2: gaps %v and %v, want the second about five times the first", g[0], g[1])
	}
	// At speed 0 nothing waits for its time.
	if spans[0]*2 > spans[2] {
		t.Errorf("speed 0: first to last request %v, want far less than speed 2's %v", spans[0], spans[2])
	}
}

func TestReplayStartsAtTheNextRecordWrittenByDefault(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	cl := newClient(t, b.Addrs())
	produceLines(t, cl, line{method: "GET", path: "/old/1"}, line{method: "GET", path: "/old/2"})

	tg := startTarget(t, nil)
	startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: tg.URL})
	// The group starts at the end once it has its partitions, which the
	// test cannot see: it writes new lines until one is replayed.
	waitFor(t, "a new line to be replayed", func() bool {
		produceLines(t, cl, line{method: "GET", path: "/new"})
		return slices.Contains(tg.requests(), "GET /new")
	})
	for _, r := range tg.requests() {
		if strings.HasPrefix(r, "GET /old/") {
			t.Errorf("replayed %s, written before the group started", r)
		}
	}
}

// The failed request is one whose connection ends without an answer, not
// one that outlives Timeout: a timeout short enough to end a hanging request
// would end the answered ones too on a loaded machine.
func TestReplayCountsStatusClassesFailuresAndLatency(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	from := time.Now()
	tg := startTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/boom":
			w.WriteHeader(http.StatusInternalServerError)
		case "/moved":
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		case "/drop":
			hangUp(t, w)
		}
	})
	produceLines(t, newClient(t, b.Addrs()),
		line{method: "GET", path: "/ok"}, line{method: "GET", path: "/ok"}, line{method: "GET", path: "/missing"},
		line{method: "GET", path: "/boom"}, line{method: "GET", path: "/moved"}, line{method: "GET", path: "/drop"},
		line{method: "PUT", path: "/ok"})
	reg := prometheus.NewRegistry()
	r := startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: tg.URL, From: from, Registry: reg})
	waitFor(t, "the replay to handle every record", func() bool { return handled(r) == 7 })
	s := r.Stats()
	want := map[string]int64{"1xx": 0, "2xx": 2, "3xx": 1, "4xx": 1, "5xx": 1, logdrain.ReplayError: 1}
	for c, n := range want {
		if s.Requests[c] != n {
			t.Errorf("%s: %d requests, want %d (stats %+v)", c, s.Requests[c], n, s)
		}
	}
	if s.P50 <= 0 || s.Max < s.P99 || s.P99 < s.P50 {
		t.Errorf("latency p50 %v p99 %v max %v", s.P50, s.P99, s.Max)
	}
	line := s.String()
	for _, part := range []string{"replayed 6 requests", "2xx 2", "3xx 1", "4xx 1", "5xx 1", "error 1", "skipped 1", "method 1", "latency p50 "} {
		if !strings.Contains(line, part) {
			t.Errorf("summary %q lacks %q", line, part)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				metrics[name] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				metrics[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, v := range map[string]float64{
		"logdrain_replay_requests_total{2xx}":   2,
		"logdrain_replay_requests_total{error}": 1,
		"logdrain_replay_skipped_total{method}": 1,
		"logdrain_replay_request_seconds":       5,
	} {
		if metrics[name] != v {
			t.Errorf("%s = %v, want %v", name, metrics[name], v)
		}
	}
}

// hangUp closes the connection of w's request without an answer.
func hangUp(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

// A request that outlives Timeout is a failure. Every request of the test
// hangs, so the timeout ends it however loaded the machine is.
func TestReplayCountsARequestThatOutlivesTimeoutAsAFailure(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	from := time.Now()
	release := make(chan struct{})
	defer close(release)
	tg := startTarget(t, func(http.ResponseWriter, *http.Request) { <-release })
	produceLines(t, newClient(t, b.Addrs()), line{method: "GET", path: "/hang"})
	r := startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: tg.URL, From: from, Timeout: 200 * time.Millisecond})
	waitFor(t, "the replay to handle the record", func() bool { return handled(r) == 1 })
	if s := r.Stats(); s.Requests[logdrain.ReplayError] != 1 || s.Requests["2xx"] != 0 {
		t.Errorf("stats %+v, want the request counted as an error", s)
	}
}

func TestNewReplayerRefusesABadConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  logdrain.ReplayConfig
		want string
	}{
		{"no target", logdrain.ReplayConfig{}, "target URL is required"},
		{"relative target", logdrain.ReplayConfig{Target: "staging.example.com"}, "want an http or https URL"},
		{"target with query", logdrain.ReplayConfig{Target: "http://h/?a=1"}, "without query"},
		{"bad include", logdrain.ReplayConfig{Target: "http://h", Include: []string{"("}}, `include "("`},
		{"bad method", logdrain.ReplayConfig{Target: "http://h", AllowMethods: []string{"GET /"}}, "allowed method"},
		{"negative rate", logdrain.ReplayConfig{Target: "http://h", Rate: -1}, "rate -1"},
		{"negative speed", logdrain.ReplayConfig{Target: "http://h", Speed: -2}, "speed -2"},
		{"NaN rate", logdrain.ReplayConfig{Target: "http://h", Rate: math.NaN()}, "rate NaN"},
		{"NaN speed", logdrain.ReplayConfig{Target: "http://h", Speed: math.NaN()}, "speed NaN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := logdrain.NewReplayer(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestReplayFromMovesBackAGroupThatRanBefore(t *testing.T) {
	b := startBroker(t)
	createRouterTopic(t, b.Addrs())
	from := time.Now()
	produceLines(t, newClient(t, b.Addrs()), line{method: "GET", path: "/x"}, line{method: "GET", path: "/y"})

	first := startTarget(t, nil)
	r, err := logdrain.NewReplayer(logdrain.ReplayConfig{Brokers: b.Addrs(), Target: first.URL, From: from, Logger: testLogger(),
		ProcessorOptions: []sluice.ProcessorOpt{sluice.CommitInterval(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "the first run to replay both lines", func() bool { return r.Stats().Sent() == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}

	committed, err := kadm.NewClient(newClient(t, b.Addrs())).FetchOffsets(context.Background(), logdrain.DefaultReplayGroup)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	committed.Each(func(o kadm.OffsetResponse) { n += o.At })
	if n != 2 {
		t.Fatalf("the first run committed offsets summing to %d, want past both lines", n)
	}
	// The group committed its position; a second run from the same time
	// replays the lines again rather than resuming after them.
	again := startTarget(t, nil)
	r = startReplay(t, b.Addrs(), logdrain.ReplayConfig{Target: again.URL, From: from})
	waitFor(t, "the second run to replay both lines", func() bool { return r.Stats().Sent() == 2 })
	if got, want := again.requests(), []string{"GET /x", "GET /y"}; !slices.Equal(got, want) {
		t.Errorf("second run: target got %q, want %q", got, want)
	}
}
