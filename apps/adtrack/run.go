package adtrack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/web"
)

// Config configures Run.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Postbacks are the configured postbacks; nil means none, and then
	// clicks are stored, installs attributed and stats counted, but no
	// network is told.
	Postbacks *Postbacks
	// StatsAddr is where the stats are served (see StatsHandler). Default
	// DefaultStatsAddr, 127.0.0.1:9097.
	StatsAddr string
	// AtLeastOnce runs the attribution, postbacks and stats groups at
	// least once instead of exactly once: without Kafka transactions, so
	// faster, but a record redone after a crash writes its conversion, its
	// postback requests and its counts again, and a network is then sent
	// the same postback twice (with the same X-Request-Id). Default false:
	// exactly once, through the postback request topic. The URL worker is
	// at least once either way: an HTTP request cannot be part of a Kafka
	// transaction, and its retries outlast a transaction's timeout.
	AtLeastOnce bool
	// Attribution configures the attribution group.
	Attribution AttributionConfig
	// Sender performs the postback requests; nil means a zero Sender, with
	// its defaults.
	Sender *Sender
	// Storage returns where a group keeps its table; nil means the default
	// Pebble directory of each group.
	Storage func(group string) store.Builder
	// Logger receives the processors' logs. Default: discard.
	Logger *slog.Logger
	// StatsReady, if set, is called with the stats' address once they are
	// served.
	StatsReady func(addr net.Addr)
	// Options are added to every group's processor after Run's own, for
	// the deployment's tuning: sluice.InstanceID, so that a processor
	// restarted after a crash takes over its partitions at once and fences
	// the transactions its predecessor left open, or sluice.SessionTimeout.
	// Default none.
	Options []sluice.ProcessorOpt
}

// Groups are the names of the groups Run runs, in the order records flow
// through them.
var Groups = []string{AttributionGroup, PostbacksGroup, URLWorkerGroup, StatsGroup}

// runner runs one processor; the groups have different row types.
type runner interface{ Run(context.Context) error }

// Run runs every group of the pipeline and serves the stats until ctx is
// done. Records that cannot be processed (malformed events among them) go
// to DeadLetterTopic with the reason, and processing goes on.
func Run(ctx context.Context, cfg Config) error {
	if cfg.StatsAddr == "" {
		cfg.StatsAddr = DefaultStatsAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sender == nil {
		cfg.Sender = &Sender{}
	}
	defer cfg.Sender.Close()
	common := []sluice.Opt{sluice.Brokers(cfg.Brokers...), sluice.Logger(cfg.Logger)}
	opts := func(group string, g sluice.DeliveryGuarantee, policy sluice.Policy) []sluice.ProcessorOpt {
		var o []sluice.ProcessorOpt
		for _, c := range common {
			o = append(o, c)
		}
		o = append(o, sluice.Guarantee(g), sluice.OnError(policy))
		if cfg.Storage != nil {
			o = append(o, sluice.Storage(cfg.Storage(group)))
		}
		return append(o, cfg.Options...)
	}
	deadLetter := sluice.DeadLetter(DeadLetterTopic)
	guarantee := sluice.ExactlyOnce
	if cfg.AtLeastOnce {
		guarantee = sluice.AtLeastOnce
	}

	var procs []runner
	attr, err := sluice.NewProcessor(DefineAttribution(cfg.Attribution).Group, opts(AttributionGroup, guarantee, deadLetter)...)
	if err != nil {
		return err
	}
	procs = append(procs, attr)
	pbs, err := sluice.NewProcessor(DefinePostbacks(cfg.Postbacks).Group, opts(PostbacksGroup, guarantee, deadLetter)...)
	if err != nil {
		return err
	}
	procs = append(procs, pbs)
	// The URL worker reads its records itself and keeps the Fail policy;
	// see DefineURLWorker.
	urls, err := sluice.NewProcessor(DefineURLWorker(cfg.Sender).Group, opts(URLWorkerGroup, sluice.AtLeastOnce, sluice.Fail)...)
	if err != nil {
		return err
	}
	procs = append(procs, urls)
	stats, err := sluice.NewProcessor(DefineStats().Group, opts(StatsGroup, guarantee, deadLetter)...)
	if err != nil {
		return err
	}
	procs = append(procs, stats)

	var vopts []sluice.ViewOpt
	for _, c := range common {
		vopts = append(vopts, c)
	}
	view, err := NewStatsView(vopts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.StatsAddr)
	if err != nil {
		return fmt.Errorf("stats: listen on %s: %w", cfg.StatsAddr, err)
	}
	srv := &http.Server{Handler: StatsHandler(view), ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	for _, p := range procs {
		g.Go(func() error { return p.Run(gctx) })
	}
	g.Go(func() error { return view.Run(gctx) })
	g.Go(func() error {
		if err := web.ServeUntil(gctx, srv, ln, 5*time.Second); err != nil {
			return fmt.Errorf("stats: serve: %w", err)
		}
		return nil
	})
	if cfg.StatsReady != nil {
		cfg.StatsReady(ln.Addr())
	}
	return g.Wait()
}
