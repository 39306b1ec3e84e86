package logdrain

// The demo's traffic: Logplex bodies as Heroku sends them for a small web
// app, with router lines of mixed routes, statuses and latencies, router
// error lines with their H codes, app lines, and now and then a broken
// frame.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// demoRoute is a route of the demo app: how often it is requested and how
// long it takes.
type demoRoute struct {
	method, path string  // path may hold one %d, an id
	weight       int     // relative frequency
	median       float64 // median service time, ms
}

var demoRoutes = []demoRoute{
	{"GET", "/", 30, 35},
	{"GET", "/api/users", 18, 80},
	{"GET", "/api/users/%d", 14, 45},
	{"GET", "/api/orders", 10, 150},
	{"POST", "/api/orders", 5, 260},
	{"GET", "/search?q=shoes&page=%d", 7, 320},
	{"GET", "/assets/app.js", 10, 4},
	{"HEAD", "/healthz", 4, 1},
	{"GET", "/api/reports", 2, 1800},
}

// demoErrors are router errors as Heroku logs them: code, description and
// the status the client got.
var demoErrors = []struct {
	code, desc string
	status     int
	service    int
}{
	{"H12", "Request timeout", 503, 30000},
	{"H13", "Connection closed without response", 503, 4200},
	{"H18", "Server Request Interrupted", 503, 90},
	{"H27", "Client Request Interrupted", 499, 60},
}

// demoGenerator writes the demo's bodies. It is not safe for concurrent
// use.
type demoGenerator struct {
	rng    *rand.Rand
	bodies int
	total  int // sum of the routes' weights
}

func newDemoGenerator(seed uint64) *demoGenerator {
	g := &demoGenerator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, r := range demoRoutes {
		g.total += r.weight
	}
	return g
}

// body returns the next body and its number of frames, as
// Logplex-Msg-Count counts them. One body in 20 holds a broken frame: a
// line that is not syslog, a router line that does not parse, or a last
// frame whose count runs past the end of the body.
func (g *demoGenerator) body(now time.Time) ([]byte, int) {
	g.bodies++
	n := 1 + g.rng.IntN(12)
	var b []byte
	for i := range n {
		// The lines of a body are the last moments' traffic, in order.
		at := now.Add(-time.Duration(n-i) * 10 * time.Millisecond)
		b = AppendFrame(b, []byte(g.line(at)+"\n"))
	}
	if g.bodies%20 == 0 {
		switch (g.bodies / 20) % 3 {
		case 0:
			b = AppendFrame(b, []byte("this is not a syslog message\n"))
		case 1:
			b = AppendFrame(b, []byte(fmt.Sprintf("<158>1 %s host heroku router - at=info method=GET path=\"/api/users status=200\n", now.UTC().Format(timestampLayout))))
		default:
			b = append(b, "512 <158>1 "+now.UTC().Format(timestampLayout)+" host heroku router - at=info method=GET path=\"/cut"...)
		}
		n++
	}
	return b, n
}

// line returns one syslog message of time at: mostly router lines, some
// router errors, some app lines.
func (g *demoGenerator) line(at time.Time) string {
	ts := at.UTC().Format(timestampLayout)
	dyno := "web." + strconv.Itoa(1+g.rng.IntN(3))
	switch p := g.rng.IntN(100); {
	case p < 12:
		return fmt.Sprintf("<190>1 %s host app %s - Completed %d in %dms", ts, dyno, 200, 1+g.rng.IntN(300))
	case p < 14:
		e := demoErrors[g.rng.IntN(len(demoErrors))]
		r := g.route()
		return fmt.Sprintf(`<158>1 %s host heroku router - at=error code=%s desc="%s" method=%s path="%s" host=demo.herokuapp.com request_id=%s fwd="%s" dyno=%s connect=%dms service=%dms status=%d bytes=0 protocol=https`,
			ts, e.code, e.desc, r.method, g.path(r), g.requestID(), g.fwd(), dyno, g.rng.IntN(3), e.service, e.status)
	}
	r := g.route()
	service := int(math.Round(r.median * math.Exp(g.rng.NormFloat64()*0.6)))
	return fmt.Sprintf(`<158>1 %s host heroku router - at=info method=%s path="%s" host=demo.herokuapp.com request_id=%s fwd="%s" dyno=%s connect=%dms service=%dms status=%d bytes=%d protocol=https`,
		ts, r.method, g.path(r), g.requestID(), g.fwd(), dyno, g.rng.IntN(4), service, g.status(r), 200+g.rng.IntN(40000))
}

func (g *demoGenerator) route() demoRoute {
	w := g.rng.IntN(g.total)
	for _, r := range demoRoutes {
		if w < r.weight {
			return r
		}
		w -= r.weight
	}
	return demoRoutes[0]
}

func (g *demoGenerator) path(r demoRoute) string {
	if strings.Contains(r.path, "%d") {
		return fmt.Sprintf(r.path, 1+g.rng.IntN(5))
	}
	return r.path
}

func (g *demoGenerator) status(r demoRoute) int {
	switch p := g.rng.IntN(100); {
	case p < 2:
		return 500
	case p < 7:
		return 404
	case r.path == "/assets/app.js" && p < 40:
		return 304
	case r.method == "POST":
		return 201
	}
	return 200
}

func (g *demoGenerator) requestID() string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", g.rng.Uint32(), g.rng.IntN(1<<16), g.rng.IntN(1<<12), g.rng.IntN(1<<12), g.rng.Uint64()&(1<<48-1))
}

// fwd is one client address, IPv4 or IPv6, or two when a proxy is on the
// way.
func (g *demoGenerator) fwd() string {
	switch g.rng.IntN(10) {
	case 0:
		return fmt.Sprintf("2001:db8::%x", 1+g.rng.IntN(0xffff))
	case 1:
		return fmt.Sprintf("203.0.113.%d,10.0.0.%d", 1+g.rng.IntN(254), 1+g.rng.IntN(254))
	}
	return fmt.Sprintf("198.51.100.%d", 1+g.rng.IntN(254))
}

// generate POSTs a body to drainURL every interval until ctx is done. A
// failed POST is logged by the caller's report and does not stop it: the
// demo's drain may be starting or its broker restarting.
func (g *demoGenerator) generate(ctx context.Context, drainURL string, interval time.Duration, report func(status int, err error)) {
	client := &http.Client{Timeout: 30 * time.Second}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		b, n := g.body(time.Now())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, drainURL, bytes.NewReader(b))
		if err != nil {
			report(0, err)
			return
		}
		req.Header.Set("Content-Type", "application/logplex-1")
		req.Header.Set("Logplex-Msg-Count", strconv.Itoa(n))
		req.Header.Set("Logplex-Frame-Id", fmt.Sprintf("demo-%d", g.bodies))
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			report(0, err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		report(resp.StatusCode, nil)
	}
}
