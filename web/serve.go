package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ServeUntil serves srv on ln until ctx is done, then shuts srv down,
// letting the requests in hand finish within grace. It returns nil after a
// clean stop, and an error if srv could not serve or if requests were still
// in hand after grace.
//
// Connections that were opened but never sent a request (a browser's or an
// HTTP client's spare dial) are closed at shutdown: http.Server.Shutdown
// alone waits up to five seconds for them, and fails if its deadline comes
// first, though nothing was lost. ServeUntil wraps srv.Handler to count the
// requests in hand.
func ServeUntil(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	var inHand atomic.Int64
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHand.Add(1)
		defer inHand.Add(-1)
		h.ServeHTTP(w, r)
	})
	shut := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			n := inHand.Load()
			_ = srv.Close()
			if n == 0 {
				err = nil
			} else {
				err = fmt.Errorf("shutdown: %d requests still in hand after %s: %w", n, grace, err)
			}
		}
		shut <- err
	})
	err := srv.Serve(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		if !stop() {
			<-shut
		}
		return err
	}
	return <-shut
}
