package logdrain

// Run: the drain, the route metrics group, the routes view and the web
// monitor in one process, as `sluice run logdrain` runs them.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/web"
)

// Config configures Run.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Listen is the drain's address. Default "127.0.0.1:8080".
	Listen string
	// RoutesAddr is the routes view's address. Default "127.0.0.1:9098".
	RoutesAddr string
	// Drain configures the drain: its credentials, limits and timeouts.
	// Its Brokers, Logger and Registry are Run's.
	Drain DrainConfig
	// Routes configures the route metrics group's minute windows.
	Routes RoutesConfig
	// Storage is where the route metrics group keeps its table; nil means
	// the default Pebble directory.
	Storage store.Builder
	// Options are added to the options of every Kafka client Run creates:
	// KafkaOptions for TLS or SASL, TopicDefaults. Default: none.
	Options []sluice.Opt
	// ProcessorOptions are added to the route metrics processor's options,
	// after Run's own (exactly once, dead letters to RoutesDeadLetters,
	// IdleAdvance of a minute). Default: none.
	ProcessorOptions []sluice.ProcessorOpt
	// RedisURL, when set (redis://[user:password@]host:port/db), mirrors
	// the route metrics to that Redis in the key scheme of RedisRoutesKey
	// and RouteDigest, every RedisInterval. Default: no mirror.
	RedisURL string
	// RedisInterval is how often the mirror writes the paths that changed.
	// Default 1s.
	RedisInterval time.Duration
	// Logger receives the logs. Default: discard.
	Logger *slog.Logger
	// Registry receives the metrics of the drain, the group and the view,
	// and is what the drain's /metrics serves: a program that runs more
	// beside them (a replay) adds its metrics to it. Default: a registry of
	// Run's own, with the Go and process collectors.
	Registry *prometheus.Registry
	// Ready, if set, is called with the drain's and the routes view's
	// addresses once both serve.
	Ready func(drain, routes net.Addr)
	// MonitorAddr is where the web monitor is served, such as
	// "127.0.0.1:9096": the route metrics group, the routes view's table,
	// the metrics, and the Routes page (MonitorPage). Default: no monitor.
	MonitorAddr string
	// MonitorReady, if set, is called with the monitor's address once it
	// serves, before Ready.
	MonitorReady func(addr net.Addr)
}

// Run runs the drain, the route metrics group, exactly once, the routes
// view, and the Redis mirror when RedisURL is set, until ctx is done. The
// drain's /metrics serves the metrics of them all.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.RoutesAddr == "" {
		cfg.RoutesAddr = "127.0.0.1:9098"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	common := append([]sluice.Opt{sluice.Brokers(cfg.Brokers...), sluice.Logger(cfg.Logger), sluice.Metrics(reg)}, cfg.Options...)

	dcfg := cfg.Drain
	dcfg.Brokers, dcfg.Logger, dcfg.Registry = cfg.Brokers, cfg.Logger.With("component", "drain"), reg
	dcfg.Options = append(append([]sluice.Opt(nil), cfg.Options...), dcfg.Options...)
	drain, err := NewDrain(dcfg)
	if err != nil {
		return err
	}
	defer drain.Close()

	g, err := DefineRoutesGroup(cfg.Routes)
	if err != nil {
		return err
	}
	popts := []sluice.ProcessorOpt{
		sluice.Guarantee(sluice.ExactlyOnce),
		sluice.OnError(sluice.DeadLetter(RoutesDeadLetters)),
		// Stream time follows the wall clock once the drain is quiet, so the
		// last minutes close and old ones are purged.
		sluice.IdleAdvance(time.Minute),
	}
	for _, o := range common {
		popts = append(popts, o)
	}
	if cfg.Storage != nil {
		popts = append(popts, sluice.Storage(cfg.Storage))
	}
	proc, err := sluice.NewProcessor(g, append(popts, cfg.ProcessorOptions...)...)
	if err != nil {
		return err
	}
	var vopts []sluice.ViewOpt
	for _, o := range common {
		vopts = append(vopts, o)
	}
	view, err := NewRoutesView(vopts...)
	if err != nil {
		return err
	}

	var mirror *redisMirror
	if cfg.RedisURL != "" {
		if mirror, err = newRedisMirror(cfg.RedisURL, cfg.RedisInterval, cfg.Logger.With("component", "redis-mirror")); err != nil {
			return err
		}
		defer mirror.close()
		if err := mirror.register(reg); err != nil {
			return err
		}
	}

	drainLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("drain: listen on %s: %w", cfg.Listen, err)
	}
	routesLn, err := net.Listen("tcp", cfg.RoutesAddr)
	if err != nil {
		drainLn.Close()
		return fmt.Errorf("routes view: listen on %s: %w", cfg.RoutesAddr, err)
	}
	var (
		monitor   *web.Monitor
		monitorLn net.Listener
	)
	if cfg.MonitorAddr != "" {
		if monitor, monitorLn, err = listenMonitor(cfg.MonitorAddr, proc, view, reg); err != nil {
			drainLn.Close()
			routesLn.Close()
			return err
		}
	}
	routesSrv := &http.Server{
		Handler:           view.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}

	eg, gctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return drain.Serve(gctx, drainLn) })
	eg.Go(func() error { return proc.Run(gctx) })
	eg.Go(func() error { return view.Run(gctx) })
	if mirror != nil {
		eg.Go(func() error { return mirror.run(gctx, view) })
	}
	eg.Go(func() error {
		if err := web.ServeUntil(gctx, routesSrv, routesLn, 5*time.Second); err != nil {
			return fmt.Errorf("routes view: serve: %w", err)
		}
		return nil
	})
	if monitor != nil {
		eg.Go(func() error { return monitor.Serve(gctx, monitorLn) })
		if cfg.MonitorReady != nil {
			cfg.MonitorReady(monitorLn.Addr())
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(drainLn.Addr(), routesLn.Addr())
	}
	return eg.Wait()
}
