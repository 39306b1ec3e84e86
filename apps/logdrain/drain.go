package logdrain

// The drain: Logplex POSTs bodies of octet-counted syslog frames, and the
// drain answers only once Kafka holds every record the body became.
//
// Invariants:
//   - A 204 is written only after Kafka acknowledged every record of the
//     body: its router and log lines and its rejected frames. Any record
//     that fails or is not acknowledged within DeliveryTimeout turns the
//     answer into a 503 with Retry-After, so Logplex sends the body again;
//     records of a failed body that did reach Kafka are then written twice,
//     never lost.
//   - A body is refused whole (400, nothing written) only when nothing of
//     it can be trusted: it holds no good frame, or its frames do not number
//     Logplex-Msg-Count. Otherwise each span SplitFrames could not frame,
//     each frame that is not RFC 5424 and each router line that does not
//     parse is written alone to RejectsTopic with its reason, and the good
//     frames of the same body go through. Logplex-Msg-Count is compared with
//     every span SplitFrames returns, bad ones included, as a frame whose
//     message is broken is still one frame that Logplex counted.
//   - Nothing is read from a request before its credentials are checked.

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/web"
)

// The Logplex request headers the drain reads.
const (
	msgCountHeader   = "Logplex-Msg-Count"
	frameIDHeader    = "Logplex-Frame-Id"
	drainTokenHeader = "Logplex-Drain-Token"
)

// DrainConfig configures a Drain.
type DrainConfig struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// BasicAuth, "user:password", makes the drain require these HTTP basic
	// credentials, as Heroku sends those of the drain URL. Default: none.
	BasicAuth string
	// DrainToken makes the drain require this Logplex-Drain-Token. With
	// both BasicAuth and DrainToken, a request needs both. Default: none;
	// with neither, every request is accepted.
	DrainToken string
	// MaxBodyBytes bounds a body; a larger one is answered 413. Default
	// 1 MiB.
	MaxBodyBytes int64
	// DropLogs drops the lines that are not router lines instead of writing
	// them to LogsTopic. Default: false, they are written.
	DropLogs bool
	// DeliveryTimeout bounds how long a request waits for Kafka to
	// acknowledge its records before it is answered 503. Default 10s.
	DeliveryTimeout time.Duration
	// RetryAfter is the Retry-After of a 503, rounded up to whole seconds.
	// Default 5s.
	RetryAfter time.Duration
	// ReadHeaderTimeout bounds the reading of a request's headers, and
	// ReadTimeout of the whole request, against slow clients. Defaults 5s
	// and 30s.
	ReadHeaderTimeout, ReadTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request. Default 120s.
	IdleTimeout time.Duration
	// Options are added to the options of the drain's emitters, after
	// Brokers and Logger: KafkaOptions for TLS or SASL, TopicDefaults.
	// Default: none.
	Options []sluice.Opt
	// Logger receives the drain's logs. Default: discard.
	Logger *slog.Logger
	// Registry receives the drain's metrics and its emitters', and is what
	// GET /metrics serves. Default: a registry of the drain's own.
	Registry *prometheus.Registry
}

// Drain is a Logplex drain: an HTTP handler that writes the lines of the
// bodies POSTed to /logs and /process to Kafka (see RouterTopic, LogsTopic
// and RejectsTopic).
type Drain struct {
	cfg                     DrainConfig
	user, password          string
	router, logs, rejects   *sluice.Emitter[[]byte]
	reg                     *prometheus.Registry
	stats                   *drainStats
	healthy                 atomic.Bool
	retryAfter              string
	lastErrMu               sync.Mutex
	lastErr                 error
	closeOnce               sync.Once
	deliveryWait, writeWait time.Duration
}

// NewDrain connects the drain's emitters, creating RouterTopic, LogsTopic
// and RejectsTopic if they do not exist.
func NewDrain(cfg DrainConfig) (*Drain, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 10 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Drain{cfg: cfg, reg: cfg.Registry}
	if cfg.BasicAuth != "" {
		user, password, ok := strings.Cut(cfg.BasicAuth, ":")
		if !ok || user == "" {
			return nil, errors.New("drain: basic auth must be user:password")
		}
		d.user, d.password = user, password
	}
	if d.reg == nil {
		d.reg = prometheus.NewRegistry()
	}
	d.stats = newDrainStats()
	if err := d.stats.register(d.reg); err != nil {
		return nil, fmt.Errorf("drain: metrics: %w", err)
	}
	d.retryAfter = strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second))
	// The client gives up on a record after DeliveryTimeout, so that a
	// broker that is down fails records rather than holding them (and the
	// requests that wait for them) for ever; the request waits a little
	// longer than that for the outcome.
	d.deliveryWait = cfg.DeliveryTimeout + time.Second
	d.writeWait = cfg.ReadTimeout + d.deliveryWait + 5*time.Second
	// A request waits for its records at most deliveryWait, so once no
	// request is in hand the records left are those of bodies already
	// answered 503, which Logplex sends again: Close waits for them no
	// longer than a request would have, not the emitters' 30s each.
	opts := []sluice.EmitterOpt{
		sluice.Brokers(cfg.Brokers...), sluice.Logger(cfg.Logger), sluice.Metrics(d.reg),
		sluice.KafkaOptions(kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout)),
		sluice.CloseTimeout(d.deliveryWait),
	}
	for _, o := range cfg.Options {
		opts = append(opts, o)
	}
	emitters := []struct {
		dst   **sluice.Emitter[[]byte]
		topic string
	}{{&d.router, RouterTopic}, {&d.logs, LogsTopic}, {&d.rejects, RejectsTopic}}
	for _, e := range emitters {
		em, err := sluice.NewEmitter(e.topic, codec.Bytes(), opts...)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("drain: %w", err)
		}
		*e.dst = em
	}
	d.healthy.Store(true)
	return d, nil
}

// Close waits for the records in flight, as long as a request waits for
// them (DeliveryTimeout and a second), and disconnects the emitters.
func (d *Drain) Close() error {
	var errs []error
	d.closeOnce.Do(func() {
		ems := []*sluice.Emitter[[]byte]{d.router, d.logs, d.rejects}
		errs = make([]error, len(ems))
		var wg sync.WaitGroup
		for i, em := range ems {
			if em != nil {
				wg.Go(func() { errs[i] = em.Close() })
			}
		}
		wg.Wait()
	})
	return errors.Join(errs...)
}

// Handler returns the drain's HTTP handler:
//
//   - POST /logs and POST /process take a Logplex body and answer 204 once
//     Kafka acknowledged all of it; 401 for missing or wrong credentials,
//     413 for a body over MaxBodyBytes, 400 for a body with no good frame
//     or whose frames do not number Logplex-Msg-Count, 408 for a body not
//     received within ReadTimeout, 503 with Retry-After when Kafka did not
//     acknowledge it;
//   - GET /healthz answers 200 {"status":"ok"}, or 503 with the error
//     while the last delivery to Kafka failed;
//   - GET /metrics serves the Registry in the Prometheus text format.
func (d *Drain) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /logs", d.serveLogs)
	mux.HandleFunc("POST /process", d.serveLogs)
	mux.HandleFunc("GET /healthz", d.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	return mux
}

// Serve serves Handler on ln, with the configured timeouts against slow
// clients, until ctx is done; then it shuts down, letting the requests in
// hand finish.
func (d *Drain) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: d.cfg.ReadHeaderTimeout,
		ReadTimeout:       d.cfg.ReadTimeout,
		WriteTimeout:      d.writeWait,
		IdleTimeout:       d.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.cfg.Logger.Handler(), slog.LevelWarn),
	}
	if err := web.ServeUntil(ctx, srv, ln, d.deliveryWait); err != nil {
		return fmt.Errorf("drain: serve: %w", err)
	}
	return nil
}

func (d *Drain) serveLogs(w http.ResponseWriter, r *http.Request) {
	status, msg := d.accept(w, r)
	d.stats.request(status)
	switch status {
	case http.StatusNoContent:
		w.WriteHeader(status)
		return
	case http.StatusUnauthorized:
		if d.user != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="logdrain"`)
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", d.retryAfter)
	}
	http.Error(w, msg, status)
}

// accept handles one body and returns the status to answer and, for an
// error, why.
func (d *Drain) accept(w http.ResponseWriter, r *http.Request) (int, string) {
	if !d.authorized(r) {
		return http.StatusUnauthorized, "missing or wrong credentials"
	}
	if r.ContentLength > d.cfg.MaxBodyBytes {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over the limit of %d", r.ContentLength, d.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the limit of %d bytes", d.cfg.MaxBodyBytes)
		}
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			return http.StatusRequestTimeout, fmt.Sprintf("body not received within %s", d.cfg.ReadTimeout)
		}
		return http.StatusBadRequest, "read body: " + err.Error()
	}
	frames := SplitFrames(body)
	good := 0
	for _, f := range frames {
		if f.Err == nil {
			good++
		}
	}
	switch {
	case len(frames) == 0:
		return http.StatusBadRequest, "body holds no frame"
	case good == 0:
		return http.StatusBadRequest, "broken framing: " + frames[0].Err.Error()
	}
	if h := r.Header.Get(msgCountHeader); h != "" {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 0 {
			return http.StatusBadRequest, fmt.Sprintf("%s %q is not a count", msgCountHeader, h)
		}
		if n != len(frames) {
			return http.StatusBadRequest, fmt.Sprintf("%s is %d but the body holds %d frames", msgCountHeader, n, len(frames))
		}
	}
	if err := d.write(frames, r.Header.Get(frameIDHeader)); err != nil {
		d.failed(err)
		return http.StatusServiceUnavailable, "kafka did not acknowledge the body: " + err.Error()
	}
	d.healthy.Store(true)
	return http.StatusNoContent, ""
}

// authorized reports whether r carries every credential the drain requires,
// comparing in constant time.
func (d *Drain) authorized(r *http.Request) bool {
	ok := true
	if d.user != "" {
		user, password, given := r.BasicAuth()
		ok = given && equal(user, d.user) && equal(password, d.password)
	}
	if d.cfg.DrainToken != "" {
		ok = equal(r.Header.Get(drainTokenHeader), d.cfg.DrainToken) && ok
	}
	return ok
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// write turns the frames into records, emits them and waits until Kafka
// acknowledged every one, or one failed, or the wait is over.
func (d *Drain) write(frames []Frame, frameID string) error {
	var dl delivery
	var lines [numLineKinds]int64
	for _, f := range frames {
		kind, rec, reason := classify(f, d.cfg.DropLogs)
		switch kind {
		case routerLine:
			dl.emit(d.router, rec.Router.Path, rec)
		case logLine:
			dl.emit(d.logs, rec.Hostname, rec)
		case rejected:
			d.stats.reject(reason.kind)
			dl.emitRaw(d.rejects, frameID, f.Msg,
				sluice.Header{Key: RejectReasonHeader, Value: []byte(reason.err.Error())},
				sluice.Header{Key: RejectKindHeader, Value: []byte(reason.kind)},
				sluice.Header{Key: RejectOffsetHeader, Value: strconv.AppendInt(nil, int64(f.Offset), 10)},
				sluice.Header{Key: RejectFrameIDHeader, Value: []byte(frameID)},
			)
		}
		lines[kind]++
	}
	if err := dl.wait(d.deliveryWait); err != nil {
		return err
	}
	d.stats.lines(lines)
	return nil
}

// failed records a delivery failure for /healthz and the log.
func (d *Drain) failed(err error) {
	d.healthy.Store(false)
	d.lastErrMu.Lock()
	d.lastErr = err
	d.lastErrMu.Unlock()
	d.cfg.Logger.Warn("body not acknowledged by kafka", "err", err)
}

func (d *Drain) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if d.healthy.Load() {
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
		return
	}
	d.lastErrMu.Lock()
	err := d.lastErr
	d.lastErrMu.Unlock()
	b, _ := json.Marshal(map[string]string{"status": "kafka unavailable", "error": fmt.Sprint(err)})
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(append(b, '\n'))
}

// errDeliveryTimeout is why a body is answered 503 when its records were
// neither acknowledged nor failed in time.
var errDeliveryTimeout = errors.New("records not acknowledged in time")

// delivery waits for the outcome of a body's records.
type delivery struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (dl *delivery) emit(em *sluice.Emitter[[]byte], key string, rec Record) {
	// The fields and the MSG they were parsed from, with room for quoting.
	dl.emitRaw(em, key, rec.AppendJSON(make([]byte, 0, 2*len(rec.Msg)+320)))
}

func (dl *delivery) emitRaw(em *sluice.Emitter[[]byte], key string, value []byte, hs ...sluice.Header) {
	dl.wg.Add(1)
	em.EmitAsync(key, value, func(err error) {
		dl.done(err)
		dl.wg.Done()
	}, hs...)
}

func (dl *delivery) done(err error) {
	if err == nil {
		return
	}
	dl.mu.Lock()
	if dl.err == nil {
		dl.err = err
	}
	dl.mu.Unlock()
}

// wait returns nil once every record was acknowledged, or the first error,
// or errDeliveryTimeout after limit. It does not stop when the client goes
// away: the outcome still tells /healthz and the counts whether Kafka took
// the records.
func (dl *delivery) wait(limit time.Duration) error {
	all := make(chan struct{})
	go func() {
		dl.wg.Wait()
		close(all)
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-all:
		dl.mu.Lock()
		defer dl.mu.Unlock()
		return dl.err
	case <-timer.C:
		return errDeliveryTimeout
	}
}
