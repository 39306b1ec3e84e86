package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/export"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
	"github.com/sluice-io/sluice/web"
)

func newDemoExportCmd(g *globalFlags) *cobra.Command {
	var (
		f           brokerFlags
		bucket      time.Duration
		rate        int
		failCalls   float64
		rejectLines float64
		stateDir    string
		monitorAddr string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Run the export of counters to a flaky local HTTP sink",
		Long: `Run the export end to end: the embedded broker; a generator of API calls
(three services, their applications and users, metrics and response codes),
each of which updates its counters of every period in "stats-updates"; the
export group, which keeps each counter's latest value per bucket of
--bucket; and a local HTTP sink that fails --fail-calls of the calls and
rejects --reject-lines of the lines at random, and prints each call it gets.
Rejected lines and failed calls are sent again; week and eternity counters
are not exported.`,
		Example: `  sluice demo export
  sluice demo export --bucket 2s --rate 200 --fail-calls 0.3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			if rate <= 0 || rate > maxHitRate {
				return fmt.Errorf("--rate %d: want a number of calls per second from 1 to %d", rate, maxHitRate)
			}
			// Written so that NaN, which compares false with everything, fails.
			if !(failCalls >= 0 && failCalls < 1) {
				return fmt.Errorf("--fail-calls %v: want a share from 0 to below 1", failCalls)
			}
			if !(rejectLines >= 0 && rejectLines < 1) {
				return fmt.Errorf("--reject-lines %v: want a share from 0 to below 1", rejectLines)
			}
			if bucket <= 0 {
				return fmt.Errorf("--bucket %s: want a positive whole number of seconds", bucket)
			}
			if err := (export.GroupConfig{Bucket: bucket}).Check(); err != nil {
				return fmt.Errorf("--bucket: %w", err)
			}
			out := cmd.OutOrStdout()
			opts, dir, err := f.options()
			if err != nil {
				return err
			}
			b, err := broker.Start(ctx, append(opts, broker.Logger(logger.With("component", "broker")))...)
			if err != nil {
				return brokerStartError(err)
			}
			defer b.Close()
			where := "in memory"
			if dir != "" {
				where = "data in " + dir
			}
			fmt.Fprintf(out, "broker   %s (%s)\n", b.Addrs()[0], where)

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("sink: %w", err)
			}
			ds := &demoSink{out: out, r: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)), failCalls: failCalls, rejectLines: rejectLines}
			srv := &http.Server{Handler: ds, ReadHeaderTimeout: 5 * time.Second}
			url := "http://" + ln.Addr().String() + "/events"
			sink, err := export.NewHTTPSink(url, nil)
			if err != nil {
				return err
			}
			em, err := sluice.NewEmitter(export.DefaultInput, codec.Int64(), sluice.Brokers(b.Addrs()...), sluice.Logger(logger))
			if err != nil {
				return err
			}
			defer em.Close()
			cfg := export.Config{
				Brokers:  b.Addrs(),
				Sink:     sink,
				Group:    export.GroupConfig{Bucket: bucket},
				Exporter: export.ExporterConfig{MaxBackoff: 2 * time.Second},
				Logger:   logger,
			}
			if stateDir != "" {
				cfg.Storage = pebble.Builder(stateDir)
			}
			cfg.MonitorAddr = monitorAddr
			monitorReady := make(chan struct{})
			if monitorAddr == "" {
				close(monitorReady)
			}
			var metricsURL string
			cfg.MonitorReady = func(addr net.Addr) {
				fmt.Fprintf(out, "monitor  http://%s/pages/%s/ (pending events and sink health; metrics at /metrics)\n", addr, export.ExportPage)
				metricsURL = "http://" + addr.String() + "/metrics"
				close(monitorReady)
			}
			fmt.Fprintf(out, "sink     %s (fails %.0f%% of calls, rejects %.0f%% of lines)\n", url, 100*failCalls, 100*rejectLines)

			eg, ectx := errgroup.WithContext(ctx)
			eg.Go(func() error { return export.Run(ectx, cfg) })
			select {
			case <-monitorReady:
			case <-ectx.Done():
				return eg.Wait()
			}
			fmt.Fprintf(out, "\n%d API calls a second update their counters in %q; the latest value of each\n", rate, export.DefaultInput)
			fmt.Fprintf(out, "per %s bucket is posted to the sink, which prints each call below. Try:\n", bucket)
			fmt.Fprintf(out, "  sluice tail %s --brokers %s\n", export.DefaultInput, b.Addrs()[0])
			if metricsURL != "" {
				fmt.Fprintf(out, "  curl -s %s | grep ^sluice_export\n", metricsURL)
			}
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			eg.Go(func() error { return generateHits(ectx, em, rate, logger.Warn) })
			eg.Go(func() error {
				if err := web.ServeUntil(ectx, srv, ln, 5*time.Second); err != nil {
					return fmt.Errorf("sink: %w", err)
				}
				return nil
			})
			return eg.Wait()
		},
	}
	f.register(cmd, "127.0.0.1:9092")
	cmd.Flags().DurationVar(&bucket, "bucket", export.DefaultBucket, "size of the buckets of event time, whole seconds")
	cmd.Flags().IntVar(&rate, "rate", 50, "API calls a second, at most a million; each updates 7 or 14 counters")
	cmd.Flags().Float64Var(&failCalls, "fail-calls", 0.1, "share of the sink's calls it fails with 503")
	cmd.Flags().Float64Var(&rejectLines, "reject-lines", 0.02, "share of the lines the sink rejects")
	cmd.Flags().StringVar(&monitorAddr, "monitor-addr", web.DefaultAddr, "address the web monitor and /metrics are served on (loopback only); empty for none")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory of the table's local store (default: the user's cache directory, sluice/state/export)")
	return cmd
}

// maxHitRate is the most API calls a second the generator makes: one a
// microsecond.
const maxHitRate = int(time.Second / time.Microsecond)

// generateHits sends the counter updates of rate API calls a second.
func generateHits(ctx context.Context, em *sluice.Emitter[int64], rate int, warn func(msg string, args ...any)) error {
	gen := export.NewGenerator(uint64(time.Now().UnixNano()))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			for _, u := range gen.Hit(now) {
				em.EmitAsync(u.Key, u.Value, func(err error) {
					if err != nil {
						warn("update not sent", "key", u.Key, "err", err)
					}
				})
			}
		}
	}
}

// demoSink is the demo's HTTP sink: it fails some calls and rejects some
// lines at random, and prints what it got.
type demoSink struct {
	out         io.Writer
	failCalls   float64
	rejectLines float64

	mu    sync.Mutex
	r     *rand.Rand
	calls int
	taken int
}

func (s *demoSink) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.r.Float64() < s.failCalls {
		fmt.Fprintf(s.out, "sink     call %d: %d events in records of %s lines: failed with 503 at random\n", s.calls, len(lines), req.Header.Get(export.RecordLinesHeader))
		http.Error(w, "refused at random", http.StatusServiceUnavailable)
		return
	}
	var ans export.HTTPAnswer
	var sample export.Event
	for i, line := range lines {
		if s.r.Float64() < s.rejectLines {
			ans.Rejected = append(ans.Rejected, export.RejectedLine{Line: i, Error: "rejected at random"})
			continue
		}
		if sample.ID == "" {
			_ = json.Unmarshal(line, &sample)
		}
	}
	s.taken += len(lines) - len(ans.Rejected)
	fmt.Fprintf(s.out, "sink     call %d: %d events, %d rejected; %d taken so far, e.g. %s = %d at %s\n",
		s.calls, len(lines), len(ans.Rejected), s.taken, sample.ID, sample.Value, sample.TimeGen)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}
