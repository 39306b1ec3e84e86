// Package clicks is the click counter: an emitter sends a click every
// interval for users user-0 … user-9 to the stream "user-clicks"; the group
// "mini-group" counts clicks per user in its table; a view over the table
// answers GET /{user} with {"Clicks":N}.
//
// `sluice demo` runs it on the embedded broker; a program runs it on any
// Kafka cluster with
//
//	err := clicks.Run(ctx, clicks.Config{Brokers: []string{"127.0.0.1:9092"}, HTTPAddr: ":9095"})
//
// and a test runs its group alone with sluicetest.New(clicks.DefineGroup()).
package clicks

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
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/web"
)

const (
	// Topic is the stream of clicks: key = user id, value = a timestamp.
	Topic = "user-clicks"
	// Group counts clicks per user; its table is Group + "-table".
	Group = "mini-group"
)

// User is a row of the group's table.
type User struct {
	Clicks int
}

// DefineGroup defines the counting group.
func DefineGroup() *sluice.Group[User] {
	g := sluice.DefineGroup[User](Group)
	sluice.Persist(g, codec.JSON[User]())
	sluice.Input(g, Topic, codec.String(), count)
	return g
}

func count(ctx *sluice.Context[User], click string) error {
	u, _ := ctx.Value()
	u.Clicks++
	ctx.SetValue(u)
	ctx.Logger().Debug(fmt.Sprintf("key: %s clicks: %d", ctx.Key(), u.Clicks), "msg", click)
	return nil
}

// Config configures Run.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// HTTPAddr is where the view is served. Default ":9095".
	HTTPAddr string
	// Interval is the time between two clicks. Default 100ms.
	Interval time.Duration
	// Users is how many users click. Default 10.
	Users int
	// Storage is where the processor keeps its table; nil means the
	// default Pebble directory.
	Storage store.Builder
	// Logger receives the processor's logs. Default: discard.
	Logger *slog.Logger
	// Ready, if set, is called with the view's address once it serves.
	Ready func(addr net.Addr)
	// MonitorAddr is where the web monitor (with /metrics) is served, for
	// example "127.0.0.1:9096". Default: no monitor.
	MonitorAddr string
	// MonitorReady, if set, is called with the monitor's address once it
	// serves.
	MonitorReady func(addr net.Addr)
	// Started, if set, is called with the processor before it runs, so that
	// the caller can watch it, for example its restore through
	// Stats().Restore().
	Started func(p *sluice.Processor[User])
}

// emitterCloseTimeout bounds how long Run waits at its end for the clicks
// emitted and not yet acknowledged.
const emitterCloseTimeout = 2 * time.Second

// processorStopTimeout is the processor's shutdown timeout. A stop takes
// milliseconds while Kafka answers; once it is gone, the counts not written
// are given up after this long instead of the default 30s, and their clicks,
// read again from the topic, are counted at the next start.
const processorStopTimeout = 3 * time.Second

// Run runs the emitter, the processor and the view until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ":9095"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.Users <= 0 {
		cfg.Users = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	common := []sluice.Opt{sluice.Brokers(cfg.Brokers...), sluice.Logger(cfg.Logger)}
	var reg *prometheus.Registry
	if cfg.MonitorAddr != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		common = append(common, sluice.Metrics(reg))
	}

	popts := []sluice.ProcessorOpt{sluice.ShutdownTimeout(processorStopTimeout)}
	for _, o := range common {
		popts = append(popts, o)
	}
	if cfg.Storage != nil {
		popts = append(popts, sluice.Storage(cfg.Storage))
	}
	proc, err := sluice.NewProcessor(DefineGroup(), popts...)
	if err != nil {
		return err
	}
	vopts := []sluice.ViewOpt{}
	for _, o := range common {
		vopts = append(vopts, o)
	}
	view, err := sluice.NewView(Group+"-table", codec.JSON[User](), vopts...)
	if err != nil {
		return err
	}
	// The clicks are generated: those not yet sent when Run stops (all
	// of them while Kafka is unreachable) are not worth the emitter's
	// default 30s wait.
	eopts := []sluice.EmitterOpt{sluice.CloseTimeout(emitterCloseTimeout)}
	for _, o := range common {
		eopts = append(eopts, o)
	}
	em, err := sluice.NewEmitter(Topic, codec.String(), eopts...)
	if err != nil {
		return err
	}
	defer em.Close()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("view: listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: view.Handler(), ReadHeaderTimeout: 5 * time.Second}

	var (
		monitor   *web.Monitor
		monitorLn net.Listener
	)
	if cfg.MonitorAddr != "" {
		monitor = web.New(web.Processors(proc), web.Views(view), web.Emitters(em), web.Metrics(reg))
		if monitorLn, err = monitor.Listen(cfg.MonitorAddr); err != nil {
			ln.Close()
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	if monitor != nil {
		g.Go(func() error { return monitor.Serve(gctx, monitorLn) })
	}
	g.Go(func() error { return proc.Run(gctx) })
	if cfg.Started != nil {
		cfg.Started(proc)
	}
	g.Go(func() error { return view.Run(gctx) })
	g.Go(func() error { return emitClicks(gctx, em, cfg.Interval, cfg.Users, cfg.Logger) })
	g.Go(func() error {
		if err := web.ServeUntil(gctx, srv, ln, 5*time.Second); err != nil {
			return fmt.Errorf("view: serve: %w", err)
		}
		return nil
	})
	if monitor != nil && cfg.MonitorReady != nil {
		cfg.MonitorReady(monitorLn.Addr())
	}
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	return g.Wait()
}

// emitClicks sends one click per interval, cycling through the users.
func emitClicks(ctx context.Context, em *sluice.Emitter[string], interval time.Duration, users int, logger *slog.Logger) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			user := fmt.Sprintf("user-%d", i%users)
			em.EmitAsync(user, now.String(), func(err error) {
				if err != nil {
					logger.Warn("click not sent", "user", user, "err", err)
				}
			})
		}
	}
}
