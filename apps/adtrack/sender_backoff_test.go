package adtrack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// arrivals is a network that answers 503 and records when each request
// arrived.
func arrivals(t *testing.T) (*httptest.Server, func() []time.Time) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), at...)
	}
}

// Each wait between attempts is at least half of Backoff doubled once per
// retry before it (the jitter takes off up to half): the waits grow, so a
// network that is down is not asked again and again at a steady rate.
func TestSendBacksOffExponentiallyBetweenAttempts(t *testing.T) {
	srv, at := arrivals(t)
	s := &Sender{Attempts: 5, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	res := send(t, s, Request{URL: srv.URL})
	got := at()
	if res.Attempts != 5 || len(got) != 5 {
		t.Fatalf("%+v after %d requests, want 5 attempts", res, len(got))
	}
	wait := s.Backoff
	for i := 1; i < len(got); i++ {
		if gap := got[i].Sub(got[i-1]); gap < wait/2 {
			t.Errorf("wait before attempt %d: %v, want at least %v", i+1, gap, wait/2)
		}
		wait *= 2
	}
}

// MaxBackoff bounds every wait, the first one included: a Backoff set
// above it does not make the first retry wait for Backoff.
func TestSendMaxBackoffBoundsTheFirstWait(t *testing.T) {
	srv, at := arrivals(t)
	s := &Sender{Attempts: 2, Backoff: time.Hour, MaxBackoff: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		res, _ := s.Send(ctx, Request{URL: srv.URL})
		done <- res
	}()
	select {
	case res := <-done:
		if res.Attempts != 2 || len(at()) != 2 {
			t.Fatalf("%+v after %d requests, want 2 attempts", res, len(at()))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no second attempt within 30s of %d: the first wait was not bounded by MaxBackoff %v", len(at()), s.MaxBackoff)
	}
}

// The zero Sender, which Run uses unless told otherwise, connects and
// waits for an answer for 3 seconds per attempt.
func TestZeroSenderHasThreeSecondConnectAndReadTimeouts(t *testing.T) {
	var s Sender
	s.init()
	tr, ok := s.client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T", s.client.Transport)
	}
	if s.ConnectTimeout != 3*time.Second || s.ReadTimeout != 3*time.Second ||
		tr.TLSHandshakeTimeout != 3*time.Second || tr.ResponseHeaderTimeout != 3*time.Second {
		t.Fatalf("connect %v, read %v, TLS handshake %v, response headers %v, want 3s each",
			s.ConnectTimeout, s.ReadTimeout, tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout)
	}
}
