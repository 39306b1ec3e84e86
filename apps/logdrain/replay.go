package logdrain

// The replay group: it reads RouterTopic and sends each line's method and
// path to a target, paced by the lines' times, a rate limit and a bound on
// the requests in flight.
//
// A record is handled in three waits, in this order: until its schedule
// says it is due (the speed factor), for a slot among the requests in
// flight (Concurrency), and for the rate limiter (Rate). Only then is the
// request sent, so the limiter's tokens go to requests that are ready, and
// a request waiting for its time holds no slot. The answer is read whole
// and counted: nothing is fired and forgotten. A request's failure is
// counted, not retried, and is no failure of the record: the replay goes
// on, and its offset is committed once it was tried.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// DefaultReplayGroup is the replay's consumer group unless
// ReplayConfig.Group names another.
const DefaultReplayGroup = "replay"

// ReplayConfig configures a Replayer.
type ReplayConfig struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Target is the base URL the requests are sent to: a line's path is
	// appended to it. Required.
	Target string
	// Rate bounds the requests sent per second, over all partitions.
	// Default 0: no bound.
	Rate float64
	// Concurrency bounds the requests in flight at once. Default 8.
	Concurrency int
	// Timeout bounds each request, from sending it to reading its answer.
	// Default 5s.
	Timeout time.Duration
	// Speed is how much faster than they were logged the requests are
	// sent: 1 keeps the spacing of the lines' times, 2 halves it. Default
	// 0: as fast as Rate and Concurrency allow.
	Speed float64
	// MaxWait bounds how long one request waits for its time: a longer gap
	// between lines is cut to MaxWait. Default 0: no bound.
	MaxWait time.Duration
	// From, when set, moves the group to the first records written at or
	// after it before the replay starts. Default: the group resumes where
	// it was, or starts at the next record written when it is new.
	From time.Time
	// Include, when not empty, replays only the paths that match one of
	// these regular expressions. Default: every path.
	Include []string
	// Exclude leaves out the paths that match one of these regular
	// expressions, after Include. Default: none.
	Exclude []string
	// AllowMethods are the methods replayed, in any case. Default GET and
	// HEAD.
	AllowMethods []string
	// Group is the consumer group. Default DefaultReplayGroup.
	Group string
	// Options are added to the options of the processor. Default: none.
	Options []sluice.Opt
	// KafkaOptions are franz-go options of the client that moves the group
	// to From, and are given to the processor too (sluice.KafkaOptions):
	// TLS or SASL. Default: none.
	KafkaOptions []kgo.Opt
	// ProcessorOptions are added to the processor's options, after the
	// replay's own (at least once, errors skipped, StartAt(Latest)).
	// Default: none.
	ProcessorOptions []sluice.ProcessorOpt
	// Registry receives the replay's metrics and the processor's. Default:
	// a registry of its own.
	Registry prometheus.Registerer
	// Logger receives the logs. Default: discard.
	Logger *slog.Logger
}

// Replayer replays the router lines of RouterTopic against a target.
type Replayer struct {
	cfg      ReplayConfig
	target   *url.URL
	include  []*regexp.Regexp
	exclude  []*regexp.Regexp
	methods  map[string]bool
	client   *http.Client
	limiter  *rate.Limiter // nil: no bound
	slots    chan struct{}
	schedule *schedule
	stats    *replayStats
	proc     *sluice.Processor[struct{}]
}

// NewReplayer checks cfg and returns a Replayer; Run starts it.
func NewReplayer(cfg ReplayConfig) (*Replayer, error) {
	if cfg.Target == "" {
		return nil, errors.New("replay: a target URL is required")
	}
	target, err := url.Parse(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("replay: target %q: %w", cfg.Target, err)
	}
	if (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("replay: target %q: want an http or https URL with a host", cfg.Target)
	}
	if target.RawQuery != "" || target.Fragment != "" {
		return nil, fmt.Errorf("replay: target %q: want a base URL without query or fragment", cfg.Target)
	}
	target.Path = strings.TrimSuffix(target.Path, "/")
	target.RawPath = strings.TrimSuffix(target.RawPath, "/")
	// The checks of Rate and Speed are written so that NaN, which compares
	// false with everything, fails them.
	switch {
	case !(cfg.Rate >= 0):
		return nil, fmt.Errorf("replay: rate %v: want requests per second, 0 for no bound", cfg.Rate)
	case !(cfg.Speed >= 0):
		return nil, fmt.Errorf("replay: speed %v: want a factor, 0 for as fast as allowed", cfg.Speed)
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("replay: concurrency %d: want a positive number of requests", cfg.Concurrency)
	case cfg.Timeout < 0 || cfg.MaxWait < 0:
		return nil, errors.New("replay: timeout and max wait must not be negative")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Group == "" {
		cfg.Group = DefaultReplayGroup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if len(cfg.AllowMethods) == 0 {
		cfg.AllowMethods = []string{http.MethodGet, http.MethodHead}
	}
	r := &Replayer{
		cfg:      cfg,
		target:   target,
		methods:  map[string]bool{},
		slots:    make(chan struct{}, cfg.Concurrency),
		schedule: newSchedule(cfg.Speed, cfg.MaxWait, anchorSettle, nil),
	}
	for _, m := range cfg.AllowMethods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || strings.ContainsFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) {
			return nil, fmt.Errorf("replay: allowed method %q: want a method name such as GET", m)
		}
		r.methods[m] = true
	}
	if r.include, err = compileAll("include", cfg.Include); err != nil {
		return nil, err
	}
	if r.exclude, err = compileAll("exclude", cfg.Exclude); err != nil {
		return nil, err
	}
	if cfg.Rate > 0 {
		// A burst of one spaces the requests evenly: a second never holds
		// more than Rate of them, plus the one at its start.
		r.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Concurrency
	r.client = &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect is the target's answer, counted as 3xx; following it
		// could lead the replay off the target.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if r.stats, err = newReplayStats(); err != nil {
		return nil, err
	}
	if err := r.stats.register(cfg.Registry); err != nil {
		return nil, err
	}

	g := sluice.DefineGroup[struct{}](cfg.Group)
	sluice.ConcurrentInput(g, RouterTopic, codec.JSON[Record](), r.handle, cfg.Concurrency, sluice.Unordered())
	opts := []sluice.ProcessorOpt{
		sluice.Brokers(cfg.Brokers...),
		sluice.Logger(cfg.Logger),
		sluice.Metrics(cfg.Registry),
		sluice.StartAt(sluice.Latest),
		// A record that is not JSON is logged and passed over: the replay
		// of the others goes on.
		sluice.OnError(sluice.Skip),
	}
	if len(cfg.KafkaOptions) > 0 {
		opts = append(opts, sluice.KafkaOptions(cfg.KafkaOptions...))
	}
	for _, o := range cfg.Options {
		opts = append(opts, o)
	}
	if r.proc, err = sluice.NewProcessor(g, append(opts, cfg.ProcessorOptions...)...); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return r, nil
}

func compileAll(what string, exprs []string) ([]*regexp.Regexp, error) {
	var res []*regexp.Regexp
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("replay: %s %q: %w", what, e, err)
		}
		res = append(res, re)
	}
	return res, nil
}

// Run replays until ctx is done. With From set, it first moves the group
// to the records written from then on.
func (r *Replayer) Run(ctx context.Context) error {
	if !r.cfg.From.IsZero() {
		if err := r.rewind(ctx); err != nil {
			return err
		}
	}
	err := r.proc.Run(ctx)
	r.client.CloseIdleConnections()
	return err
}

// Stats returns the replay's counts.
func (r *Replayer) Stats() ReplayStats { return r.stats.snapshot() }

// rewind commits, for every partition of RouterTopic, the offset of the
// first record written at or after From, as kafka-consumer-groups
// --reset-offsets --to-datetime does; the group must have no members.
func (r *Replayer) rewind(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...)}, r.cfg.KafkaOptions...)...)
	if err != nil {
		return fmt.Errorf("replay: rewind to %v: %w", r.cfg.From, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	listed, err := adm.ListOffsetsAfterMilli(ctx, r.cfg.From.UnixMilli(), RouterTopic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: rewind to %v: list offsets of %s: %w", r.cfg.From, RouterTopic, err)
	}
	if len(listed[RouterTopic]) == 0 {
		return fmt.Errorf("replay: rewind to %v: topic %s has no partitions", r.cfg.From, RouterTopic)
	}
	committed, err := adm.CommitOffsets(ctx, r.cfg.Group, listed.Offsets())
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: rewind group %s to %v (is another replay of the group running?): %w", r.cfg.Group, r.cfg.From, err)
	}
	return nil
}

// handle replays one router record.
func (r *Replayer) handle(ctx *sluice.Context[struct{}], rec Record) error {
	u, method, reason := r.request(rec)
	if reason != "" {
		r.stats.skip(reason)
		return nil
	}
	at := ctx.Timestamp()
	if t, err := time.Parse(time.RFC3339Nano, rec.Timestamp); err == nil {
		at = t
	}
	c := ctx.Context()
	due, err := r.schedule.due(c, at)
	if err != nil {
		return err
	}
	if err := sleepUntil(c, due); err != nil {
		return err
	}
	select {
	case r.slots <- struct{}{}:
	case <-c.Done():
		return c.Err()
	}
	defer func() { <-r.slots }()
	if r.limiter != nil {
		if err := r.limiter.Wait(c); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(c, method, u, nil)
	if err != nil {
		r.stats.skip(SkipInvalid)
		return nil
	}
	req.Header.Set("User-Agent", "sluice-replay")
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		if c.Err() != nil {
			return c.Err() // stopping: the record is abandoned, not counted
		}
		r.stats.failed()
		ctx.Logger().Debug("replay request failed", "method", method, "url", u, "err", err)
		return nil
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		r.stats.failed()
		return nil
	}
	r.stats.answered(resp.StatusCode, time.Since(start))
	return nil
}

// request returns the URL and method of rec's request, or the reason it
// is skipped.
func (r *Replayer) request(rec Record) (u, method, skip string) {
	if rec.Router == nil || rec.Router.Method == "" {
		return "", "", SkipInvalid
	}
	path := rec.Router.Path
	// Only a path of the target's host: "//other/…" or "http://other/…"
	// would send the request elsewhere.
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return "", "", SkipInvalid
	}
	method = strings.ToUpper(rec.Router.Method)
	if !r.methods[method] {
		return "", "", SkipMethod
	}
	if !r.pathAllowed(path) {
		return "", "", SkipPath
	}
	ref, err := url.Parse(path)
	if err != nil {
		return "", "", SkipInvalid
	}
	t := *r.target
	t.Path = r.target.Path + ref.Path
	if ref.RawPath != "" || r.target.RawPath != "" {
		t.RawPath = r.target.EscapedPath() + ref.EscapedPath()
	}
	t.RawQuery = ref.RawQuery
	return t.String(), method, ""
}

func (r *Replayer) pathAllowed(path string) bool {
	if len(r.include) > 0 {
		in := false
		for _, re := range r.include {
			if re.MatchString(path) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, re := range r.exclude {
		if re.MatchString(path) {
			return false
		}
	}
	return true
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
