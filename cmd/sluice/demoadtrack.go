package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice/apps/adtrack"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// slowNetworkDelay is how long slowads takes to answer: slow, yet within
// the URL worker's 3s read timeout.
const slowNetworkDelay = 500 * time.Millisecond

// demoSender gives up on brokenads sooner than the default, so that its
// requests do not pile up behind the demo's steady traffic.
func demoSender() *adtrack.Sender {
	return &adtrack.Sender{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
}

func newDemoAdTrackCmd(g *globalFlags) *cobra.Command {
	var (
		f            brokerFlags
		statsAddr    string
		networksAddr string
		rate         float64
		exactlyOnce  bool
		brokers      []string
	)
	cmd := &cobra.Command{
		Use:   "adtrack",
		Short: "Run the ad tracking pipeline on generated traffic",
		Long: `Run the ad tracking pipeline (sluice run adtrack) end to end on the
embedded broker, with generated traffic and a local HTTP server standing in
for three ad networks: fastads answers at once, slowads after 0.5s and
brokenads with 503 to every attempt (three, 0.1s and 0.2s apart).

The traffic is clicks on six campaign links (two per network) and in-app
events: installs that match their click by device id, installs that match
by ip and platform, bots' clicks, installs of clicks whose window has
closed, organic installs no click matches, then payments, app opens and
other events of the installed apps.

The stats are printed as they change and served as JSON on --stats-addr;
the requests the networks received are counted on the receiver's page.
Stop it with Ctrl-C.`,
		Example: `  sluice demo adtrack
  curl 127.0.0.1:9097/clickstats/1
  curl 127.0.0.1:9097/pbstats/brokenads-install`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !cmd.Flags().Changed("log-level") {
				// Unmatched installs and failed postbacks are logged at
				// info, and the demo makes many; the stats count them.
				g.logLevel = "warn"
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			interval, err := trafficInterval(rate)
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
				fmt.Fprintf(out, "broker    %s (%s)\n", brokers[0], where)
			}
			recv, err := startReceiver(networksAddr)
			if err != nil {
				return err
			}
			defer recv.Close()
			fmt.Fprintf(out, "networks  %s/ (fastads answers at once, slowads after %v, brokenads 503)\n", recv.url, slowNetworkDelay)
			ps, err := demoPostbacks(recv.url)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
			if err != nil {
				return fmt.Errorf("traffic: %w", err)
			}
			defer cl.Close()

			eg, ctx := errgroup.WithContext(ctx)
			ready := make(chan string, 1)
			cfg := adtrack.Config{
				Brokers: brokers, Postbacks: ps, StatsAddr: statsAddr, Logger: logger, Sender: demoSender(),
				// The tables restore from their changelogs at each start.
				Storage:    func(string) store.Builder { return memory.Builder() },
				StatsReady: func(a net.Addr) { ready <- "http://" + a.String() },
			}
			cfg.AtLeastOnce = !exactlyOnce
			eg.Go(func() error { return adtrack.Run(ctx, cfg) })
			eg.Go(func() error {
				var stats string
				select {
				case stats = <-ready:
				case <-ctx.Done():
					return nil
				}
				fmt.Fprintf(out, "stats     %s/clickstats/{1..%d}, %s/pbstats/{postback_id}, %s/attribution\n", stats, demoLinks, stats, stats)
				fmt.Fprintf(out, "groups    %s (%s)\n", strings.Join(adtrack.Groups, ", "), guaranteeName(exactlyOnce))
				fmt.Fprintf(out, "Inspect the topics with any Kafka client, e.g.:\n  kcat -b %s -C -t %s\n", strings.Join(brokers, ","), adtrack.ResultsTopic)
				fmt.Fprintf(out, "Press Ctrl-C to stop.\n\n")
				eg.Go(func() error { return sendTraffic(ctx, cl, interval) })
				printStats(ctx, out, stats, ps, recv)
				return nil
			})
			return eg.Wait()
		},
	}
	f.register(cmd, "127.0.0.1:9092")
	cmd.Flags().StringVar(&statsAddr, "stats-addr", adtrack.DefaultStatsAddr, "address the stats are served on")
	cmd.Flags().StringVar(&networksAddr, "networks-addr", "127.0.0.1:9098", "address the stand-in ad networks listen on")
	cmd.Flags().Float64Var(&rate, "rate", 10, "stories of generated traffic a second, from one a day to a million")
	cmd.Flags().BoolVar(&exactlyOnce, "exactly-once", true, "run the groups exactly once; --exactly-once=false runs them at least once (the URL worker is at least once either way)")
	cmd.Flags().StringSliceVar(&brokers, "brokers", nil, "use these Kafka brokers instead of starting the embedded one")
	return cmd
}

// The rates of traffic the demo can send: a story at least every
// maxTrafficInterval, at most every minTrafficInterval.
const (
	minTrafficRate = float64(time.Second) / float64(maxTrafficInterval)
	maxTrafficRate = float64(time.Second) / float64(minTrafficInterval)

	minTrafficInterval = time.Microsecond
	maxTrafficInterval = 24 * time.Hour
)

// trafficInterval returns the time between two stories at rate stories a
// second, or why the demo cannot send at that rate.
func trafficInterval(rate float64) (time.Duration, error) {
	// Written so that NaN, which compares false with everything, fails.
	if !(rate >= minTrafficRate && rate <= maxTrafficRate) {
		return 0, fmt.Errorf("--rate %v: want a number of stories a second from %g (one a day) to %g", rate, minTrafficRate, maxTrafficRate)
	}
	return time.Duration(float64(time.Second) / rate), nil
}

// sendTraffic writes the generated events, a story every interval, until
// ctx is done.
func sendTraffic(ctx context.Context, cl *kgo.Client, interval time.Duration) error {
	tr := newDemoTraffic(uint64(time.Now().UnixNano()))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			var recs []*kgo.Record
			for _, r := range tr.next(now) {
				recs = append(recs, &kgo.Record{Topic: r.topic, Key: []byte(adtrack.EventID(r.ev)[:8]), Value: r.ev.AppendWire(nil)})
			}
			if len(recs) == 0 {
				continue
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("traffic: %w", err)
			}
		}
	}
}

// receiver is the stand-in for the ad networks, counting their requests.
type receiver struct {
	srv      *http.Server
	url      string
	requests [3]atomic.Int64
}

func startReceiver(addr string) (*receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("networks: listen on %s: %w (pass --networks-addr to use another port)", addr, err)
	}
	r := &receiver{url: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	for i, name := range demoNetworks {
		mux.HandleFunc("/"+name+"/", func(w http.ResponseWriter, req *http.Request) {
			r.requests[i].Add(1)
			_, _ = io.Copy(io.Discard, req.Body)
			switch name {
			case "slowads":
				select {
				case <-time.After(slowNetworkDelay):
				case <-req.Context().Done():
					return
				}
			case "brokenads":
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.counts())
	})
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// counts are the requests each network received, by name.
func (r *receiver) counts() map[string]int64 {
	m := map[string]int64{}
	for i, name := range demoNetworks {
		m[name] = r.requests[i].Load()
	}
	return m
}

func (r *receiver) Close() { _ = r.srv.Close() }

// printStats prints a line of the stats served at base each time they
// change, until ctx is done.
func printStats(ctx context.Context, out io.Writer, base string, ps *adtrack.Postbacks, recv *receiver) {
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) adtrack.Counters {
		c := adtrack.Counters{}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return c
		}
		resp, err := client.Do(req)
		if err != nil {
			return c
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			_ = json.NewDecoder(resp.Body).Decode(&c)
		}
		return c
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var clicks, bots, withID, conv int64
		for cl := 1; cl <= demoLinks; cl++ {
			c := get("/clickstats/" + strconv.Itoa(cl))
			clicks, bots, withID, conv = clicks+c[adtrack.CountCounter], bots+c[adtrack.BotClickCounter], withID+c[adtrack.WithAdidCounter], conv+c[adtrack.ConversionCounter]
		}
		a := get("/attribution")
		var pbs []string
		for _, p := range ps.All() {
			c := get("/pbstats/" + p.ID)
			ok := c["respcode:200"] + c["respcode:204"] + c["respcode:302"]
			s := fmt.Sprintf("%s %d ok", p.ID, ok)
			if failed := c[adtrack.CountCounter] - ok; failed > 0 {
				s += fmt.Sprintf(" %d not", failed)
			}
			pbs = append(pbs, s)
		}
		n := recv.counts()
		line := fmt.Sprintf("clicks %d (bots %d, with device id %d) · installs attributed %d, not %d · conversions %d\n          postbacks %s\n          networks received fastads %d, slowads %d, brokenads %d (retries included)",
			clicks, bots, withID, a[adtrack.MatchedCounter], a[adtrack.UnmatchedCounter], conv, strings.Join(pbs, ", "),
			n["fastads"], n["slowads"], n["brokenads"])
		if line != last {
			fmt.Fprintf(out, "%s %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
	}
}
