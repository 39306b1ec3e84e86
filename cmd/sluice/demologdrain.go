package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/store/pebble"
	"github.com/sluice-io/sluice/web"
)

func newDemoLogdrainCmd(g *globalFlags) *cobra.Command {
	var (
		f          appFlags
		listen     string
		routesAddr string
		targetAddr string
		interval   time.Duration
		stateDir   string
		monitor    string
	)
	cmd := &cobra.Command{
		Use:   "logdrain",
		Short: "Run the log drain on generated Heroku traffic, with route metrics and a replay",
		Long: `Run the log drain end to end: the embedded broker, the drain on --listen, the
group "route-metrics" with its view on --routes-addr, a generator that POSTs a
Logplex body every --interval (router lines of a small web app with mixed
routes, statuses and latencies, router errors with their H codes, app lines,
and now and then a broken frame, which goes to "logdrain-rejects"), and a
replay of the router lines at their own pace against a stand-in app on
--target-addr. --monitor-addr serves the web monitor, whose Routes page shows
the busiest and the slowest routes with a chart of a route's minutes. Stop it
with Ctrl-C.`,
		Example: `  sluice demo logdrain
  curl -s 127.0.0.1:9098/routes
  curl -s 127.0.0.1:9098/routes/%2Fapi%2Forders
  curl -s 127.0.0.1:8080/metrics | grep logdrain_replay`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			if interval <= 0 {
				return fmt.Errorf("--interval %v: want a positive duration", interval)
			}
			out := cmd.OutOrStdout()
			brokers, stop, err := f.connect(ctx, logger, out)
			if err != nil {
				return err
			}
			defer stop()
			cfg := logdrain.DemoConfig{
				Brokers:     brokers,
				Listen:      listen,
				RoutesAddr:  routesAddr,
				TargetAddr:  targetAddr,
				Interval:    interval,
				Logger:      logger,
				MonitorAddr: monitor,
				Ready: func(a logdrain.DemoAddrs) {
					fmt.Fprintf(out, "drain    http://%s/logs (a body every %v)\n", a.Drain, interval)
					fmt.Fprintf(out, "routes   http://%s/routes\n", a.Routes)
					fmt.Fprintf(out, "target   http://%s/ (the replay's)\n", a.Target)
					fmt.Fprintf(out, "metrics  http://%s/metrics\n", a.Drain)
					if a.Monitor != nil {
						fmt.Fprintf(out, "monitor  http://%s/pages/%s/ (the busiest and slowest routes)\n", a.Monitor, logdrain.RoutesPage)
					}
					fmt.Fprintln(out)
					fmt.Fprintf(out, "Try:\n  curl -s %s/routes\n  curl -s %s/routes/%%2Fapi%%2Forders\n", a.Routes, a.Routes)
					fmt.Fprintf(out, "  curl -s %s/metrics | grep -E 'logdrain_(lines|rejected_frames|replay_requests)_total'\n", a.Drain)
					fmt.Fprintf(out, "  kcat -b %s -C -t %s -f '%%h %%s\\n'\n", strings.Join(brokers, ","), logdrain.RejectsTopic)
					fmt.Fprintln(out, "Press Ctrl-C to stop.")
				},
			}
			if stateDir != "" {
				cfg.Storage = pebble.Builder(stateDir)
			}
			return logdrain.RunDemo(ctx, cfg)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address the drain listens on")
	cmd.Flags().StringVar(&routesAddr, "routes-addr", "127.0.0.1:9098", "address the routes view listens on")
	cmd.Flags().StringVar(&targetAddr, "target-addr", "127.0.0.1:9100", "address of the stand-in app the traffic is replayed against")
	cmd.Flags().DurationVar(&interval, "interval", 200*time.Millisecond, "time between two generated bodies")
	cmd.Flags().StringVar(&monitor, "monitor-addr", web.DefaultAddr, "address the web monitor is served on (loopback only); empty for none")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory of the route metrics' local store (default: the user's cache directory, sluice/state/<group>)")
	return cmd
}
