package adtrack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// RequestIDHeader is the header that carries a request's id, the same on
// every retry, so that a network can drop repeats.
const RequestIDHeader = "X-Request-Id"

// Sender performs postback requests: POST (or the configured method) when a
// body is set, else GET, with the configured headers and X-Request-Id;
// redirects are not followed. A request the network may not have taken (no
// answer, or status 408, 429 or 5xx) is retried with exponential backoff;
// any other answer is final. The zero Sender is ready to use; it is safe for
// concurrent use, and its fields must not change once it has sent.
type Sender struct {
	// ConnectTimeout bounds connecting to the network, TLS handshake
	// included, per attempt. Default 3s.
	ConnectTimeout time.Duration
	// ReadTimeout bounds the wait for the response once the request is
	// sent, per attempt. Default 3s.
	ReadTimeout time.Duration
	// Attempts is the most times a request is sent, the first included.
	// Default 4.
	Attempts int
	// Backoff is the wait before the first retry; each further wait
	// doubles it, up to MaxBackoff, and is jittered by up to half so that
	// retries to a network that comes back do not arrive all at once.
	// Default 250ms.
	Backoff time.Duration
	// MaxBackoff bounds each wait between attempts. Default 5s.
	MaxBackoff time.Duration

	once   sync.Once
	client *http.Client
}

// Defaults of Sender.
const (
	// DefaultConnectTimeout is Sender.ConnectTimeout's default.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultReadTimeout is Sender.ReadTimeout's default.
	DefaultReadTimeout = 3 * time.Second
	// DefaultAttempts is Sender.Attempts's default.
	DefaultAttempts = 4
	// DefaultBackoff is Sender.Backoff's default.
	DefaultBackoff = 250 * time.Millisecond
	// DefaultMaxBackoff is Sender.MaxBackoff's default.
	DefaultMaxBackoff = 5 * time.Second
)

// errorBodyLimit bounds how much of a failed response's body goes into the
// result's error text.
const errorBodyLimit = 256

func (s *Sender) init() {
	s.once.Do(func() {
		if s.ConnectTimeout <= 0 {
			s.ConnectTimeout = DefaultConnectTimeout
		}
		if s.ReadTimeout <= 0 {
			s.ReadTimeout = DefaultReadTimeout
		}
		if s.Attempts <= 0 {
			s.Attempts = DefaultAttempts
		}
		if s.Backoff <= 0 {
			s.Backoff = DefaultBackoff
		}
		if s.MaxBackoff <= 0 {
			s.MaxBackoff = DefaultMaxBackoff
		}
		dialer := &net.Dialer{Timeout: s.ConnectTimeout, KeepAlive: 30 * time.Second}
		s.client = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           dialer.DialContext,
				TLSHandshakeTimeout:   s.ConnectTimeout,
				ResponseHeaderTimeout: s.ReadTimeout,
				MaxIdleConnsPerHost:   16,
				IdleConnTimeout:       90 * time.Second,
			},
			// A 302 is the network's answer, not a page to fetch.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
}

// Send performs req and returns its outcome. The error is non-nil only
// when ctx ends first: then the outcome is unknown, no result should be
// recorded, and the request is to be sent again later (with the same id).
func (s *Sender) Send(ctx context.Context, req Request) (Result, error) {
	s.init()
	res := Result{Request: req}
	// MaxBackoff bounds the first wait too, when Backoff is set above it.
	wait := min(s.Backoff, s.MaxBackoff)
	for {
		res.Attempts++
		code, retry, err := s.attempt(ctx, req)
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("send postback %q: %w", req.PostbackID, context.Cause(ctx))
		}
		res.Code = code
		switch {
		case err != nil:
			res.Status, res.Error = StatusFailed, err.Error()
		case code == http.StatusOK || code == http.StatusNoContent || code == http.StatusFound:
			res.Status, res.Error = StatusOK, ""
		case code == http.StatusBadRequest:
			res.Status, res.Error = StatusMissingParameter, ""
		}
		if !retry || res.Attempts >= s.Attempts {
			res.At = time.Now().UTC().Truncate(time.Second)
			return res, nil
		}
		d := wait/2 + rand.N(wait/2+1)
		wait = min(2*wait, s.MaxBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, fmt.Errorf("send postback %q: %w", req.PostbackID, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// attempt sends req once. It returns the response's status (0 when there
// was none), whether another attempt may succeed, and for a status other
// than ok or missing_parameter an error that says what went wrong.
func (s *Sender) attempt(ctx context.Context, req Request) (code int, retry bool, err error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
		if req.Body != "" {
			method = http.MethodPost
		}
	}
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	// The attempt's own context lets the read timeout abort a body that
	// never ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, method, req.URL, body)
	if err != nil {
		// A request that cannot be built will not build on a retry.
		return 0, false, err
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	if req.ID != "" {
		hr.Header.Set(RequestIDHeader, req.ID)
	}
	resp, err := s.client.Do(hr)
	if err != nil {
		return 0, true, err
	}
	defer resp.Body.Close()
	code = resp.StatusCode
	switch code {
	case http.StatusOK, http.StatusNoContent, http.StatusFound, http.StatusBadRequest:
		// Drain a little so the connection can be reused, no longer than
		// the read timeout allows.
		readBounded(resp.Body, 4096, s.ReadTimeout, cancel)
		return code, false, nil
	}
	msg := fmt.Sprintf("status %d", code)
	if text := strings.TrimSpace(string(readBounded(resp.Body, errorBodyLimit, s.ReadTimeout, cancel))); text != "" {
		msg += ": " + text
	}
	retry = code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
	return code, retry, errors.New(msg)
}

// readBounded reads at most n bytes of r, giving up after timeout by
// cancelling the request r belongs to.
func readBounded(r io.Reader, n int64, timeout time.Duration, cancel context.CancelFunc) []byte {
	t := time.AfterFunc(timeout, cancel)
	defer t.Stop()
	b, _ := io.ReadAll(io.LimitReader(r, n))
	return b
}

// Close closes the idle connections the sender keeps open.
func (s *Sender) Close() {
	s.init()
	s.client.CloseIdleConnections()
}
