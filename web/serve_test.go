package web_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/web"
)

func serveUntil(t *testing.T, h http.Handler, grace time.Duration) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- web.ServeUntil(ctx, &http.Server{Handler: h}, ln, grace) }()
	return ln.Addr().String(), cancel, done
}

func TestServeUntilStopsCleanlyPastAConnectionThatNeverSentARequest(t *testing.T) {
	addr, cancel, done := serveUntil(t, http.NotFoundHandler(), 100*time.Millisecond)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spare, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeUntil: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeUntil did not return")
	}
}

func TestServeUntilReportsARequestStillInHandAfterTheGrace(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	addr, cancel, done := serveUntil(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}), 100*time.Millisecond)
	go func() {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "1 requests still in hand") {
			t.Fatalf("ServeUntil: %v, want the request in hand reported", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeUntil did not return")
	}
}

func TestServeUntilReturnsTheListenersError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := web.ServeUntil(context.Background(), &http.Server{}, ln, time.Second); err == nil {
		t.Fatal("ServeUntil on a closed listener returned nil")
	}
}
