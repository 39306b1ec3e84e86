package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/web"
)

func newReplayCmd(g *globalFlags) *cobra.Command {
	var (
		f           appFlags
		cfg         logdrain.ReplayConfig
		from        string
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay the router lines of a log drain against a target",
		Long: `Replay the traffic the log drain saw: every router line of the topic "router"
(written by "sluice run logdrain") is sent again, its method and path, to the
base URL --target, and the answer is read and counted by status class.

The group "replay" starts at the next line written when it is new and resumes
where it stopped otherwise; --from moves it first to the lines written since
a time (RFC 3339, unix milliseconds, or a duration ago such as 15m).

--speed paces the requests by the lines' times: 1 keeps their spacing, 2 is
twice as fast, 0 as fast as --rate (requests per second, 0 for no bound) and
--concurrency (requests in flight) allow. --max-wait cuts long gaps. Only GET
and HEAD are sent unless --allow-methods names more; --include and
--exclude (regular expressions, repeatable) filter the paths. Redirects are
counted as 3xx, not followed.

Counts and latency are served as Prometheus metrics on --metrics-addr while it
runs, and printed as one summary line on exit.`,
		Example: `  sluice run replay --brokers kafka-1:9092 --target https://staging.example.com
  sluice run replay --brokers kafka-1:9092 --target http://127.0.0.1:3000 --from 1h --speed 0 --rate 50
  sluice run replay --brokers kafka-1:9092 --target http://staging --include '^/api/' --exclude '/health$'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			if cfg.Concurrency < 1 {
				return fmt.Errorf("--concurrency %d: want a positive number of requests", cfg.Concurrency)
			}
			if cfg.Timeout <= 0 {
				return fmt.Errorf("--timeout %v: want a positive duration", cfg.Timeout)
			}
			// Empty, the library would take its defaults and the banner
			// would print what is not replayed.
			if len(cfg.AllowMethods) == 0 {
				return errors.New("--allow-methods: give at least one method, e.g. GET,HEAD")
			}
			if cfg.Group == "" {
				return errors.New("--group: give the consumer group's name")
			}
			if cfg.From, err = replayFrom(from, time.Now()); err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			cfg.Registry, cfg.Logger = reg, logger
			out := cmd.OutOrStdout()
			brokers, stop, err := f.connect(ctx, logger, out)
			if err != nil {
				return err
			}
			defer stop()
			cfg.Brokers = brokers
			r, err := logdrain.NewReplayer(cfg)
			if err != nil {
				return err
			}
			eg, gctx := errgroup.WithContext(ctx)
			if metricsAddr != "" {
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("metrics: listen on %s: %w", metricsAddr, err)
				}
				srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
				eg.Go(func() error {
					if err := web.ServeUntil(gctx, srv, ln, 5*time.Second); err != nil {
						return fmt.Errorf("metrics: serve: %w", err)
					}
					return nil
				})
				fmt.Fprintf(out, "metrics  http://%s/metrics\n", ln.Addr())
			}
			start := "the next line written"
			if !cfg.From.IsZero() {
				start = "the lines since " + cfg.From.Format(time.RFC3339)
			}
			fmt.Fprintf(out, "replaying %s of %q to %s (speed %v, rate %s, concurrency %d, methods %s)\n",
				start, logdrain.RouterTopic, cfg.Target, cfg.Speed, rateName(cfg.Rate), cfg.Concurrency, strings.Join(cfg.AllowMethods, ","))
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			eg.Go(func() error { return r.Run(gctx) })
			err = eg.Wait()
			fmt.Fprintln(out, r.Stats())
			return err
		},
	}
	f.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&cfg.Target, "target", "", "base URL the requests are sent to, e.g. https://staging.example.com (required)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second at most, over all partitions; 0 for no bound")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "requests in flight at once, at most")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "how long a request may take, reading its answer included")
	fs.Float64Var(&cfg.Speed, "speed", 1, "pace by the lines' times: 1 keeps their spacing, 2 twice as fast, 0 as fast as --rate and --concurrency allow")
	fs.DurationVar(&cfg.MaxWait, "max-wait", 0, "cut any gap between lines to this; 0 for no cut")
	fs.StringVar(&from, "from", "latest", "where to start: latest (or where the group stopped), an RFC 3339 time, unix milliseconds, or a duration ago (15m)")
	fs.StringArrayVar(&cfg.Include, "include", nil, "replay only the paths that match this regular expression (repeatable: any of them)")
	fs.StringArrayVar(&cfg.Exclude, "exclude", nil, "leave out the paths that match this regular expression (repeatable)")
	fs.StringSliceVar(&cfg.AllowMethods, "allow-methods", []string{"GET", "HEAD"}, "methods replayed, comma-separated")
	fs.StringVar(&cfg.Group, "group", logdrain.DefaultReplayGroup, "consumer group of the replay")
	fs.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:9099", "address /metrics is served on; empty for none")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

// replayFrom reads --from: the zero time for latest.
func replayFrom(s string, now time.Time) (time.Time, error) {
	if s == "latest" || s == "end" || s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	p, err := parseFrom(s)
	switch {
	case err == nil && p.kind == "time":
		return time.UnixMilli(p.milli), nil
	case err == nil && p.kind == "beginning":
		return time.UnixMilli(0), nil
	}
	return time.Time{}, fmt.Errorf("--from %q: want latest, beginning, an RFC 3339 time (2026-11-22T05:00:00Z), unix milliseconds or a duration ago (15m)", s)
}

func rateName(r float64) string {
	if r <= 0 {
		return "unbounded"
	}
	return fmt.Sprintf("%v/s", r)
}
