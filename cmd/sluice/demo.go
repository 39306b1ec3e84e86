package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/clicks"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/internal/progress"
	"github.com/sluice-io/sluice/web"
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	var (
		f           brokerFlags
		httpAddr    string
		monitorAddr string
		brokers     []string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the click counter on the embedded broker",
		Long: `Run the click counter end to end: the embedded broker, an emitter that
sends a click every 100ms for user-0 … user-9 to "user-clicks", the group
"mini-group" that counts clicks per user in its table, and a view of that
table served over HTTP, and the web monitor of all three (with their metrics
at /metrics) on 127.0.0.1:9096. Stop it with Ctrl-C; run it again and the
counts go on from where they were.

sluice demo adtrack runs the ad tracking pipeline instead, on generated
traffic, and sluice demo logdrain the log drain on generated Heroku traffic.`,
		Example: `  sluice demo
  curl localhost:9095/user-3
  open http://127.0.0.1:9096/
  sluice demo adtrack`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			given, err := brokersGiven(cmd, brokers)
			if err != nil {
				return err
			}
			if !given {
				opts, dir, err := f.options()
				if err != nil {
					return err
				}
				b, err := broker.Start(ctx, append(opts, broker.Logger(logger.With("component", "broker")))...)
				if err != nil {
					return brokerStartError(err)
				}
				defer b.Close()
				brokers = b.Addrs()
				where := "in memory"
				if dir != "" {
					where = "data in " + dir
				}
				fmt.Fprintf(out, "broker   %s (%s)\n", brokers[0], where)
			}
			// The restore bar is drawn until the restore is over or the
			// demo stops.
			var watch sync.WaitGroup
			defer watch.Wait()
			watchCtx, stopWatch := context.WithCancel(ctx)
			defer stopWatch()
			return clicks.Run(ctx, clicks.Config{
				Brokers:     brokers,
				HTTPAddr:    httpAddr,
				Logger:      logger,
				MonitorAddr: monitorAddr,
				Started: func(p *sluice.Processor[clicks.User]) {
					watch.Go(func() { watchRestore(watchCtx, cmd.ErrOrStderr(), p.Stats) })
				},
				MonitorReady: func(addr net.Addr) {
					fmt.Fprintf(out, "monitor  http://%s/ (metrics at /metrics)\n", addr)
				},
				Ready: func(addr net.Addr) {
					port := addr.(*net.TCPAddr).Port
					fmt.Fprintf(out, "view     http://localhost:%d/{user}\n\n", port)
					fmt.Fprintf(out, "Clicks for user-0 … user-9 are being counted. Try:\n  curl localhost:%d/user-3\n", port)
					fmt.Fprintf(out, "Inspect the topics with any Kafka client, e.g.:\n  kcat -b %s -C -t %s -f '%%k %%s\\n'\n", strings.Join(brokers, ","), "mini-group-table")
					fmt.Fprintln(out, "Press Ctrl-C to stop; the counts continue on the next run.")
				},
			})
		},
	}
	f.register(cmd, "127.0.0.1:9092")
	cmd.Flags().StringVar(&httpAddr, "http", ":9095", "address the view is served on")
	cmd.Flags().StringVar(&monitorAddr, "monitor-addr", web.DefaultAddr, "address the web monitor and /metrics are served on (loopback only); empty for none")
	cmd.Flags().StringSliceVar(&brokers, "brokers", nil, "use these Kafka brokers instead of starting the embedded one")
	cmd.AddCommand(newDemoExportCmd(g), newDemoAdTrackCmd(g), newDemoLogdrainCmd(g))
	return cmd
}

// watchRestore draws a bar of a processor's restore on w while it restores.
func watchRestore(ctx context.Context, w io.Writer, stats func() sluice.Stats) {
	progress.WatchRestore(ctx, w, 100*time.Millisecond, func() progress.RestoreState {
		r := stats().Restore()
		return progress.RestoreState{Restored: r.Restored, Total: r.Total, Restoring: r.Restoring}
	})
}
