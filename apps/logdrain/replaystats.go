package logdrain

// The replay's counts: requests by status class, lines skipped by reason,
// and the latency of the answers, which Stats returns, /metrics serves and
// the summary line prints.

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/prometheus/client_golang/prometheus"
)

// The status classes of ReplayStats.Requests.
const (
	// ReplayError is the class of a request that got no answer: the
	// connection failed or the timeout passed.
	ReplayError = "error"
)

// replayClasses are the status classes in the order the summary prints
// them.
var replayClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", ReplayError}

// The reasons of ReplayStats.Skipped.
const (
	// SkipMethod counts the lines whose method AllowMethods leaves out.
	SkipMethod = "method"
	// SkipPath counts the lines whose path Include or Exclude leaves out.
	SkipPath = "path"
	// SkipInvalid counts the records that are not router lines with a
	// method and a path that starts with a single slash.
	SkipInvalid = "invalid"
)

var replaySkipReasons = []string{SkipMethod, SkipPath, SkipInvalid}

// ReplayStats are the counts of a Replayer since it was created.
type ReplayStats struct {
	// Requests counts the requests sent, by the class of their answer's
	// status ("2xx", "4xx" …) or ReplayError.
	Requests map[string]int64
	// Skipped counts the records not replayed, by SkipMethod, SkipPath or
	// SkipInvalid.
	Skipped map[string]int64
	// P50, P95, P99 and Max are the latencies of the answered requests,
	// from sending the request to reading the whole answer, within 1%.
	P50, P95, P99, Max time.Duration
}

// Sent returns the number of requests sent, answered or not.
func (s ReplayStats) Sent() int64 {
	var n int64
	for _, v := range s.Requests {
		n += v
	}
	return n
}

// String returns the summary line of s, for example
// "replayed 120 requests: 2xx 110, 3xx 0, 4xx 6, 5xx 2, error 2; skipped 7: method 5, path 2, invalid 0; latency p50 12ms p95 48ms p99 90ms max 102ms".
func (s ReplayStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replayed %d requests: ", s.Sent())
	for i, c := range replayClasses[1:] { // 1xx only when there are any
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", c, s.Requests[c])
	}
	if n := s.Requests["1xx"]; n > 0 {
		fmt.Fprintf(&b, ", 1xx %d", n)
	}
	var skipped int64
	for _, v := range s.Skipped {
		skipped += v
	}
	fmt.Fprintf(&b, "; skipped %d: ", skipped)
	for i, r := range replaySkipReasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", r, s.Skipped[r])
	}
	fmt.Fprintf(&b, "; latency p50 %v p95 %v p99 %v max %v", s.P50.Round(time.Millisecond/10), s.P95.Round(time.Millisecond/10),
		s.P99.Round(time.Millisecond/10), s.Max.Round(time.Millisecond/10))
	return b.String()
}

// replayStats counts what a Replayer does.
type replayStats struct {
	requests map[string]*atomic.Int64
	skipped  map[string]*atomic.Int64
	latency  prometheus.Histogram

	mu     sync.Mutex
	sketch *ddsketch.DDSketch // seconds of answered requests
}

func newReplayStats() (*replayStats, error) {
	sk, err := ddsketch.NewDefaultDDSketch(0.01)
	if err != nil {
		return nil, fmt.Errorf("replay latency sketch: %w", err)
	}
	s := &replayStats{
		requests: map[string]*atomic.Int64{},
		skipped:  map[string]*atomic.Int64{},
		sketch:   sk,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "logdrain_replay_request_seconds",
			Help:    "Latency of the answered replayed requests, from sending the request to reading the whole answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	for _, c := range replayClasses {
		s.requests[c] = new(atomic.Int64)
	}
	for _, r := range replaySkipReasons {
		s.skipped[r] = new(atomic.Int64)
	}
	return s, nil
}

// answered counts a request answered with status after d.
func (s *replayStats) answered(status int, d time.Duration) {
	class := ReplayError
	if status >= 100 && status < 600 {
		class = fmt.Sprintf("%dxx", status/100)
	}
	s.requests[class].Add(1)
	s.latency.Observe(d.Seconds())
	s.mu.Lock()
	_ = s.sketch.Add(d.Seconds()) // fails only for negative values
	s.mu.Unlock()
}

func (s *replayStats) failed()            { s.requests[ReplayError].Add(1) }
func (s *replayStats) skip(reason string) { s.skipped[reason].Add(1) }

func (s *replayStats) snapshot() ReplayStats {
	st := ReplayStats{Requests: map[string]int64{}, Skipped: map[string]int64{}}
	for c, n := range s.requests {
		st.Requests[c] = n.Load()
	}
	for r, n := range s.skipped {
		st.Skipped[r] = n.Load()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sketch.IsEmpty() {
		return st
	}
	seconds := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	if qs, err := s.sketch.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99}); err == nil {
		st.P50, st.P95, st.P99 = seconds(qs[0]), seconds(qs[1]), seconds(qs[2])
	}
	if m, err := s.sketch.GetMaxValue(); err == nil {
		st.Max = seconds(m)
	}
	return st
}

// register exposes the counts as Prometheus metrics.
func (s *replayStats) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{s.latency}
	for c, n := range s.requests {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "logdrain_replay_requests_total",
			Help:        "Replayed requests, by the class of their answer's status, or error when none came.",
			ConstLabels: prometheus.Labels{"class": c},
		}, func() float64 { return float64(n.Load()) }))
	}
	for r, n := range s.skipped {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "logdrain_replay_skipped_total",
			Help:        "Router records not replayed, by reason: method (not allowed), path (filtered out) or invalid.",
			ConstLabels: prometheus.Labels{"reason": r},
		}, func() float64 { return float64(n.Load()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register replay metrics: %w", err)
		}
	}
	return nil
}
