package export

// Run: the export group's processor and, with a sink, its Exporter, side by
// side until the context is done.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/web"
)

// Config configures Run. Exactly one of Sink and Topic is set.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Sink receives the events in calls, within Exporter.Limits.
	Sink Sink
	// Topic is the Kafka topic the events are written to, with the batch
	// that closes their bucket (in its transaction under exactly once).
	Topic string
	// Group configures the group; its Exporter, Topic and Metrics are
	// Run's to set.
	Group GroupConfig
	// Exporter configures the sink side; its Logger and Metrics are Run's
	// to set.
	Exporter ExporterConfig
	// IdleAdvance is how long a partition may receive nothing before its
	// stream time follows the wall clock, so that the last bucket closes
	// and is shipped when updates stop. Default 2s; negative: off.
	IdleAdvance time.Duration
	// Guarantee is the delivery guarantee. Default sluice.AtLeastOnce.
	Guarantee sluice.DeliveryGuarantee
	// DeadLetters is the topic of the updates that failed: an unparsable
	// key or value, an update later than its bucket's grace. Default: the
	// group's name + "-dead-letters".
	DeadLetters string
	// Storage is where the processor keeps its table; nil means the
	// default Pebble directory.
	Storage store.Builder
	// Logger receives the logs. Default: discard.
	Logger *slog.Logger
	// Metrics, if set, registers the processor's, the group's and the
	// exporter's metrics. Default: none.
	Metrics prometheus.Registerer
	// MonitorAddr is where the web monitor of the processor, with the
	// metrics at /metrics (the exporter's pending events, paused state and
	// sink errors among them) and the Export page (MonitorPage), is served,
	// such as "127.0.0.1:9096". Default: no monitor.
	MonitorAddr string
	// MonitorReady, if set, is called with the monitor's address once it
	// serves.
	MonitorReady func(addr net.Addr)
	// Options are more options of the processor, after Run's own.
	Options []sluice.ProcessorOpt
	// Started, if set, is called with the processor and the exporter (nil
	// with Topic) before they run.
	Started func(p *sluice.Processor[Pending], x *Exporter)
}

// Check returns the error Run and Flush would return for cfg before
// connecting to Kafka: neither or both of Sink and Topic, a bucket that is
// not a whole number of seconds, a negative grace, limits out of range, a
// group name or topic Kafka refuses, a Topic that is the group's input.
func (cfg Config) Check() error {
	if (cfg.Sink == nil) == (cfg.Topic == "") {
		return errors.New("export: want either a sink or a topic")
	}
	if err := cfg.Group.Check(); err != nil {
		return err
	}
	// The group's definition: names Kafka refuses, a topic used twice.
	gcfg := cfg.Group.withDefaults()
	gcfg.Topic, gcfg.Metrics = cfg.Topic, nil
	if err := (&group{cfg: gcfg}).define().Validate(); err != nil {
		return err
	}
	if cfg.Sink != nil {
		if err := cfg.Exporter.Limits.withDefaults().validate(); err != nil {
			return fmt.Errorf("exporter: %w", err)
		}
	}
	return nil
}

// Run runs the export until ctx is done. Events the sink has not accepted
// by then stay pending in the group's table, and the next Run sends them.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var gather prometheus.Gatherer
	if cfg.MonitorAddr != "" && cfg.Metrics == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		cfg.Metrics, gather = reg, reg
	} else if g, ok := cfg.Metrics.(prometheus.Gatherer); ok {
		gather = g
	}
	if cfg.IdleAdvance == 0 {
		cfg.IdleAdvance = 2 * time.Second
	}
	gcfg := cfg.Group
	gcfg.Metrics = cfg.Metrics
	gcfg.Topic = cfg.Topic
	gcfg.Exporter = nil
	var x *Exporter
	if cfg.Sink != nil {
		ecfg := cfg.Exporter
		ecfg.Logger = cfg.Logger.With("component", "exporter")
		ecfg.Metrics = cfg.Metrics
		var err error
		if x, err = NewExporter(watchSink(cfg.Sink), ecfg); err != nil {
			return err
		}
		gcfg.Exporter = x
	}
	g, err := DefineGroup(gcfg)
	if err != nil {
		return err
	}
	dead := cfg.DeadLetters
	if dead == "" {
		dead = g.Name() + "-dead-letters"
	}
	opts := []sluice.ProcessorOpt{
		sluice.Brokers(cfg.Brokers...),
		sluice.Logger(cfg.Logger),
		sluice.Guarantee(cfg.Guarantee),
		sluice.OnError(sluice.DeadLetter(dead)),
	}
	if cfg.IdleAdvance > 0 {
		opts = append(opts, sluice.IdleAdvance(cfg.IdleAdvance))
	}
	if cfg.Metrics != nil {
		opts = append(opts, sluice.Metrics(cfg.Metrics))
	}
	if cfg.Storage != nil {
		opts = append(opts, sluice.Storage(cfg.Storage))
	}
	proc, err := sluice.NewProcessor(g, append(opts, cfg.Options...)...)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var (
		monitor   *web.Monitor
		monitorLn net.Listener
	)
	if cfg.MonitorAddr != "" {
		mopts := []web.Opt{web.Processors(proc), web.Pages(MonitorPage(x, gather))}
		if gather != nil {
			mopts = append(mopts, web.Metrics(gather))
		}
		monitor = web.New(mopts...)
		if monitorLn, err = monitor.Listen(cfg.MonitorAddr); err != nil {
			return fmt.Errorf("export: %w", err) // the monitor names itself
		}
	}
	if cfg.Started != nil {
		cfg.Started(proc, x)
	}
	eg, ectx := errgroup.WithContext(ctx)
	if monitor != nil {
		eg.Go(func() error { return monitor.Serve(ectx, monitorLn) })
		if cfg.MonitorReady != nil {
			cfg.MonitorReady(monitorLn.Addr())
		}
	}
	eg.Go(func() error { return proc.Run(ectx) })
	if x != nil {
		eg.Go(func() error { return x.Run(ectx) })
	}
	return eg.Wait()
}
