package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/export"
	"github.com/sluice-io/sluice/internal/progress"
	"github.com/sluice-io/sluice/store/pebble"
	"github.com/sluice-io/sluice/web"
)

// exportFlags are the flags of `sluice run export`.
type exportFlags struct {
	app          appFlags
	sink         string
	input        string
	group        string
	bucket       time.Duration
	grace        time.Duration
	idleAdvance  time.Duration
	pendingLimit int
	limits       export.Limits
	fileMaxBytes int64
	fileMaxAge   time.Duration
	stateDir     string
	exactlyOnce  bool
	monitorAddr  string
	flush        bool
}

func newExportCmd(g *globalFlags) *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the latest value of changing counters per time bucket to a sink",
		Long: `Run the export: counter updates sent to "stats-updates" (key: a stats key
such as stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411, value:
the counter's new value in decimal) are grouped in tumbling buckets of event
time (--bucket); when a bucket closes, the latest value of each key in it is
shipped as one JSON event, with time_gen the bucket's end and a stable id.

--sink says where the events go:
  file:/dir          JSON Lines files in /dir, rotated by size and age
  http://host/path   POST of NDJSON, in calls within the limits; the answer
                     may reject some lines, which are sent again
  kafka:topic        a topic of the same Kafka cluster, in the group's
                     transaction with --exactly-once

Events the sink has not accepted stay pending in the group's table and are
sent first after a restart; above --pending-limit the input waits for the
sink. --flush sends the events pending now and exits. Week and eternity
counters are not exported; updates that fail (an
unparsable key or value, later than the bucket's grace) go to
"export-dead-letters".`,
		Example: `  sluice run export --sink file:/tmp/export
  sluice run export --sink http://127.0.0.1:8080/events --bucket 30s --grace 5s
  sluice run export --sink kafka:stats-events --exactly-once
  echo 'stats/{service:1006}/metric:hits/hour:2016010411|42' | sluice produce stats-updates --key-separator '|'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			cfg := export.Config{
				Group:       export.GroupConfig{Name: f.group, Input: f.input, Bucket: f.bucket, Grace: f.grace},
				Exporter:    export.ExporterConfig{Limits: f.limits, PendingLimit: f.pendingLimit},
				IdleAdvance: f.idleAdvance,
				Logger:      logger,
			}
			if f.idleAdvance == 0 {
				cfg.IdleAdvance = -1
			}
			if err := f.check(); err != nil {
				return err
			}
			where, err := f.setSink(&cfg)
			if err != nil {
				return err
			}
			// What the export would refuse is refused before the broker
			// starts and the banner says it runs.
			if err := cfg.Check(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			brokers, stop, err := f.app.connect(ctx, logger, out)
			if err != nil {
				return err
			}
			defer stop()
			cfg.Brokers = brokers
			if f.stateDir != "" {
				cfg.Storage = pebble.Builder(f.stateDir)
			}
			if f.exactlyOnce {
				cfg.Guarantee = sluice.ExactlyOnce
			}
			cfg.MonitorAddr = f.monitorAddr
			cfg.MonitorReady = func(addr net.Addr) {
				fmt.Fprintf(out, "monitor  http://%s/pages/%s/ (pending events and sink health; metrics at /metrics: sluice_export_pending_events, ...)\n", addr, export.ExportPage)
			}
			if f.flush {
				return flushExport(ctx, cmd, cfg, where)
			}
			fmt.Fprintf(out, "exporting %q in buckets of %s (grace %s) to %s. Try:\n", f.input, f.bucket, f.grace, where)
			fmt.Fprintf(out, "  echo 'stats/{service:1006}/metric:hits/hour:2016010411|42' | sluice produce %s --brokers %s --key-separator '|'\n",
				f.input, strings.Join(brokers, ","))
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			return export.Run(ctx, cfg)
		},
	}
	f.app.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.sink, "sink", "", "where events go: file:/dir, http(s)://host/path or kafka:topic (required)")
	fl.StringVar(&f.input, "input", export.DefaultInput, "topic of the counter updates")
	fl.StringVar(&f.group, "group", export.DefaultGroup, "name of the export group; its table is <group>-table")
	fl.DurationVar(&f.bucket, "bucket", export.DefaultBucket, "size of the tumbling buckets of event time, whole seconds")
	fl.DurationVar(&f.grace, "grace", 0, "how long a bucket stays open after its end for updates out of order")
	fl.DurationVar(&f.idleAdvance, "idle-advance", 2*time.Second, "after this long without updates, event time follows the wall clock so the last bucket ships (0: off)")
	fl.IntVar(&f.pendingLimit, "pending-limit", export.DefaultPendingLimit, "events waiting for the sink above which the input waits")
	fl.IntVar(&f.limits.MaxRecordsPerCall, "max-records-per-call", export.DefaultMaxRecordsPerCall, "records per sink call, at most")
	fl.IntVar(&f.limits.MaxEventsPerRecord, "max-events-per-record", export.DefaultMaxEventsPerRecord, "events (lines) per record, at most")
	fl.IntVar(&f.limits.MaxRecordBytes, "max-record-bytes", export.DefaultMaxRecordBytes, "bytes per record, at most")
	fl.IntVar(&f.limits.MaxCallBytes, "max-call-bytes", export.DefaultMaxCallBytes, "bytes per sink call, at most")
	fl.Int64Var(&f.fileMaxBytes, "file-max-bytes", 64<<20, "with a file sink: start a new file past this size")
	fl.DurationVar(&f.fileMaxAge, "file-max-age", time.Minute, "with a file sink: finish a file after this long")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory of the table's local store (default: the user's cache directory, sluice/state/<group>)")
	fl.BoolVar(&f.exactlyOnce, "exactly-once", false, "process exactly once, with Kafka transactions (a kafka: sink is then written exactly once)")
	fl.StringVar(&f.monitorAddr, "monitor-addr", "", "address the web monitor and /metrics are served on, such as "+web.DefaultAddr+" (default: none)")
	fl.BoolVar(&f.flush, "flush", false, "send the events pending now, with a progress bar on a terminal, and exit")
	_ = cmd.MarkFlagRequired("sink")
	return cmd
}

// check refuses the values the library would take for its defaults or for
// off: on the command line they are mistakes, not requests for those.
func (f *exportFlags) check() error {
	switch {
	case f.input == "":
		return errors.New("--input: give the topic of the counter updates")
	case f.group == "":
		return errors.New("--group: give the export group's name")
	}
	if f.pendingLimit <= 0 {
		return fmt.Errorf("--pending-limit %d: want a positive number of events", f.pendingLimit)
	}
	for _, l := range []struct {
		flag string
		n    int64
	}{
		{"--max-records-per-call", int64(f.limits.MaxRecordsPerCall)},
		{"--max-events-per-record", int64(f.limits.MaxEventsPerRecord)},
		{"--max-record-bytes", int64(f.limits.MaxRecordBytes)},
		{"--max-call-bytes", int64(f.limits.MaxCallBytes)},
		{"--file-max-bytes", f.fileMaxBytes},
	} {
		if l.n <= 0 {
			return fmt.Errorf("%s %d: want a positive number", l.flag, l.n)
		}
	}
	switch {
	case f.bucket <= 0:
		return fmt.Errorf("--bucket %s: want a positive whole number of seconds", f.bucket)
	case f.fileMaxAge <= 0:
		return fmt.Errorf("--file-max-age %s: want a positive duration", f.fileMaxAge)
	case f.idleAdvance < 0:
		return fmt.Errorf("--idle-advance %s: want a duration, or 0 for off", f.idleAdvance)
	case f.grace < 0:
		return fmt.Errorf("--grace %s: want a duration, or 0 for none", f.grace)
	}
	return nil
}

// flushExport sends the events pending now and says how many.
func flushExport(ctx context.Context, cmd *cobra.Command, cfg export.Config, where string) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	cfg.MonitorAddr = ""
	var (
		bar     *progress.Bar
		flushed int
	)
	err := export.Flush(ctx, cfg, func(done, total int) {
		if bar == nil && total > 0 && progress.IsTerminal(errOut) {
			bar = progress.New(errOut, int64(total), "events")
		}
		if bar != nil {
			bar.Set(int64(done))
		}
		flushed = done
	})
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "flushed %d pending events to %s\n", flushed, where)
	return nil
}

// setSink sets cfg's sink or topic from --sink and says where events go.
func (f *exportFlags) setSink(cfg *export.Config) (string, error) {
	switch {
	case strings.HasPrefix(f.sink, "file:"):
		dir := strings.TrimPrefix(f.sink, "file:")
		s, err := export.NewFileSink(export.FileSinkConfig{Dir: dir, MaxFileBytes: f.fileMaxBytes, MaxFileAge: f.fileMaxAge})
		if err != nil {
			return "", err
		}
		cfg.Sink = s
		return "JSON Lines files in " + dir, nil
	case strings.HasPrefix(f.sink, "http://"), strings.HasPrefix(f.sink, "https://"):
		s, err := export.NewHTTPSink(f.sink, nil)
		if err != nil {
			return "", err
		}
		cfg.Sink = s
		return "POST " + f.sink, nil
	case strings.HasPrefix(f.sink, "kafka:") && len(f.sink) > len("kafka:"):
		cfg.Topic = strings.TrimPrefix(f.sink, "kafka:")
		return "topic " + cfg.Topic, nil
	}
	return "", fmt.Errorf("--sink %q: want file:/dir, http(s)://host/path or kafka:topic", f.sink)
}
