package logdrain

// RunDemo: the drain, the route metrics, a generator of Logplex traffic
// and a replay of it against a local stand-in for a staging app, in one
// process, as `sluice demo logdrain` runs them.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/web"
)

// DemoConfig configures RunDemo.
type DemoConfig struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Listen and RoutesAddr are the drain's and the routes view's
	// addresses, as in Config. Defaults "127.0.0.1:8080" and
	// "127.0.0.1:9098".
	Listen, RoutesAddr string
	// MonitorAddr is the web monitor's address, as in Config. Default: no
	// monitor.
	MonitorAddr string
	// TargetAddr is the address of the stand-in app the traffic is
	// replayed against. Default "127.0.0.1:9100".
	TargetAddr string
	// Interval is the time between two bodies of the generator. Default
	// 200ms.
	Interval time.Duration
	// Storage is where the route metrics group keeps its table; nil means
	// the default Pebble directory.
	Storage store.Builder
	// Options are added to the options of every Kafka client. Default:
	// none.
	Options []sluice.Opt
	// Logger receives the logs. Default: discard.
	Logger *slog.Logger
	// Ready, if set, is called once the drain, the routes view and the
	// target serve.
	Ready func(DemoAddrs)
}

// DemoAddrs are where the parts of a demo serve.
type DemoAddrs struct {
	// Drain serves POST /logs, /healthz, and /metrics for the drain, the
	// route metrics group and the replay.
	Drain net.Addr
	// Routes serves GET /routes and GET /routes/{path}.
	Routes net.Addr
	// Target is the stand-in app the replay sends its requests to.
	Target net.Addr
	// Monitor serves the web monitor with its Routes page, or is nil
	// without DemoConfig.MonitorAddr.
	Monitor net.Addr
}

// RunDemo runs until ctx is done: the drain, the route metrics group and
// the routes view as Run does, a generator that POSTs a body of Logplex
// lines to the drain every Interval, and a replay of the router lines, at
// their own pace, against a stand-in app on TargetAddr.
func RunDemo(ctx context.Context, cfg DemoConfig) error {
	if cfg.TargetAddr == "" {
		cfg.TargetAddr = "127.0.0.1:9100"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	targetLn, err := net.Listen("tcp", cfg.TargetAddr)
	if err != nil {
		return fmt.Errorf("demo target: listen on %s: %w", cfg.TargetAddr, err)
	}
	target := &http.Server{Handler: http.HandlerFunc(demoApp), ReadHeaderTimeout: 5 * time.Second}
	replay, err := NewReplayer(ReplayConfig{
		Brokers:     cfg.Brokers,
		Target:      "http://" + targetLn.Addr().String(),
		Speed:       1,
		Rate:        100,
		Concurrency: 8,
		Group:       "logdrain-demo-replay",
		Options:     cfg.Options,
		Registry:    reg,
		Logger:      cfg.Logger.With("component", "replay"),
	})
	if err != nil {
		targetLn.Close()
		return err
	}

	eg, gctx := errgroup.WithContext(ctx)
	ready := make(chan [3]net.Addr, 1)
	eg.Go(func() error {
		var monitor net.Addr
		return Run(gctx, Config{
			Brokers: cfg.Brokers, Listen: cfg.Listen, RoutesAddr: cfg.RoutesAddr, Storage: cfg.Storage,
			Options: cfg.Options, Logger: cfg.Logger, Registry: reg,
			MonitorAddr:  cfg.MonitorAddr,
			MonitorReady: func(addr net.Addr) { monitor = addr },
			Ready:        func(drain, routes net.Addr) { ready <- [3]net.Addr{drain, routes, monitor} },
		})
	})
	eg.Go(func() error {
		if err := web.ServeUntil(gctx, target, targetLn, 5*time.Second); err != nil {
			return fmt.Errorf("demo target: serve: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		var addrs [3]net.Addr
		select {
		case addrs = <-ready:
		case <-gctx.Done():
			return nil
		}
		// The drain created the router topic before it listened, so the
		// replay starts on a topic that exists.
		eg.Go(func() error { return replay.Run(gctx) })
		if cfg.Ready != nil {
			cfg.Ready(DemoAddrs{Drain: addrs[0], Routes: addrs[1], Target: targetLn.Addr(), Monitor: addrs[2]})
		}
		log := cfg.Logger.With("component", "generator")
		newDemoGenerator(uint64(time.Now().UnixNano())).generate(gctx, "http://"+addrs[0].String()+"/logs", cfg.Interval, func(status int, err error) {
			switch {
			case err != nil:
				log.Warn("post to the drain", "err", err)
			case status >= 500:
				log.Warn("the drain answered", "status", status)
			}
		})
		return nil
	})
	return eg.Wait()
}

// demoApp stands in for the staging app the traffic is replayed against:
// it knows the demo's routes, takes a little time over the API, and
// answers 404 to the rest.
func demoApp(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/" || p == "/healthz" || p == "/assets/app.js" || p == "/search":
	case strings.HasPrefix(p, "/api/"):
		select {
		case <-time.After(time.Duration(len(p)) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s %s\n", r.Method, r.URL.RequestURI())
}
