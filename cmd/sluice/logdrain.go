package main

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/store/pebble"
	"github.com/sluice-io/sluice/web"
)

func newLogdrainCmd(g *globalFlags) *cobra.Command {
	var (
		f          appFlags
		listen     string
		routesAddr string
		auth       string
		token      string
		maxBody    int64
		dropLogs   bool
		delivery   time.Duration
		stateDir   string
		redisURL   string
		monitor    string
	)
	cmd := &cobra.Command{
		Use:   "logdrain",
		Short: "Run a Logplex log drain with per-route metrics",
		Long: `Run the log drain: Heroku POSTs an app's logs to --listen (POST /logs or
/process, octet-counted RFC 5424 frames). Router lines go to the topic "router"
as JSON keyed by path, other lines to "logs" (unless --drop-logs), and frames
that do not parse to "logdrain-rejects" with the reason in their headers. A
body is answered 204 only once Kafka acknowledged all of it, 503 with
Retry-After when it did not.

The group "route-metrics" sums service and connect times and counts statuses
per path, exactly once, with per-minute windows of p50, p95 and p99 service
time; --routes-addr serves GET /routes (all, the busiest first) and
GET /routes/{path} with the path escaped as one segment (/routes/%2Ffoo).
--redis-url mirrors them to Redis every second in the key scheme of the drain
this one replaces: HSET routes <path> <sha256hex(path)>, and the hashes
<digest>::service and <digest>::connect (sum, count, average) and
<digest>::statuses.

--monitor-addr serves the web monitor: the group, /metrics, and a Routes page
with the busiest and the slowest routes and a chart of a route's minutes.

Set --auth, --drain-token or both: without either, the drain accepts every
request.`,
		Example: `  sluice run logdrain --auth drain:s3cret
  heroku drains:add https://drain:s3cret@drain.example.com/logs -a myapp
  curl -s 127.0.0.1:9098/routes/%2F`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			if auth != "" {
				if user, _, ok := strings.Cut(auth, ":"); !ok || user == "" {
					return fmt.Errorf("--auth %q: want user:password", auth)
				}
			}
			// The library takes zero for its default; a value given on the
			// command line is what the user asked for, or an error.
			if maxBody <= 0 {
				return fmt.Errorf("--max-body %d: want a positive number of bytes", maxBody)
			}
			if delivery <= 0 {
				return fmt.Errorf("--delivery-timeout %s: want a positive duration", delivery)
			}
			out := cmd.OutOrStdout()
			brokers, stop, err := f.connect(ctx, logger, out)
			if err != nil {
				return err
			}
			defer stop()
			cfg := logdrain.Config{
				Brokers:    brokers,
				Listen:     listen,
				RoutesAddr: routesAddr,
				Drain: logdrain.DrainConfig{
					BasicAuth:       auth,
					DrainToken:      token,
					MaxBodyBytes:    maxBody,
					DropLogs:        dropLogs,
					DeliveryTimeout: delivery,
				},
				RedisURL:    redisURL,
				Logger:      logger,
				MonitorAddr: monitor,
				MonitorReady: func(addr net.Addr) {
					fmt.Fprintf(out, "monitor  http://%s/pages/%s/\n", addr, logdrain.RoutesPage)
				},
				Ready: func(drain, routes net.Addr) {
					fmt.Fprintf(out, "drain    http://%s/logs\n", drain)
					fmt.Fprintf(out, "routes   http://%s/routes\n", routes)
					fmt.Fprintf(out, "metrics  http://%s/metrics\n", drain)
					if auth == "" && token == "" {
						fmt.Fprintln(out, "warning: neither --auth nor --drain-token is set: the drain accepts every request")
					}
					fmt.Fprintln(out, "Press Ctrl-C to stop.")
				},
			}
			if stateDir != "" {
				cfg.Storage = pebble.Builder(stateDir)
			}
			return logdrain.Run(ctx, cfg)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address the drain listens on")
	cmd.Flags().StringVar(&routesAddr, "routes-addr", "127.0.0.1:9098", "address the routes view listens on")
	cmd.Flags().StringVar(&auth, "auth", "", "require these HTTP basic credentials, user:password")
	cmd.Flags().StringVar(&token, "drain-token", "", "require this Logplex-Drain-Token")
	cmd.Flags().Int64Var(&maxBody, "max-body", 1<<20, "largest body accepted, in bytes; larger ones are answered 413")
	cmd.Flags().BoolVar(&dropLogs, "drop-logs", false, `drop the lines that are not router lines instead of writing them to "logs"`)
	cmd.Flags().DurationVar(&delivery, "delivery-timeout", 10*time.Second, "how long a request waits for Kafka before it is answered 503")
	cmd.Flags().StringVar(&redisURL, "redis-url", "", "mirror the route metrics to this Redis, redis://[user:password@]host:port/db (default: no mirror)")
	cmd.Flags().StringVar(&monitor, "monitor-addr", web.DefaultAddr, "address the web monitor is served on (loopback only); empty for none")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory of the route metrics' local store (default: the user's cache directory, sluice/state/<group>)")
	return cmd
}
