package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/adtrack"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

func newAdTrackCmd(g *globalFlags) *cobra.Command {
	var (
		f           appFlags
		postbacks   string
		statsAddr   string
		stateDir    string
		exactlyOnce bool
	)
	cmd := &cobra.Command{
		Use:   "adtrack",
		Short: "Attribute installs to ad clicks and send the networks' postbacks",
		Long: `Run the ad tracking pipeline: clicks on campaign links sent to "clicks" are
stored under their lookup key; each install ("ist") sent to "inapp" is
attributed to the click whose window ends first under the first of its keys
that has one (device id, its hashes, then ip and platform), and the click is
consumed. Conversions and in-app events fire the postbacks configured in
--postbacks (YAML); the URL worker sends them and writes each outcome to
"postback-results". Events are in the tracker format "<path> <meta> <params>".

Stats are served as JSON on --stats-addr: GET /clickstats/{campaign_link_id},
/pbstats/{postback_id} and /attribution. Records that cannot be processed go
to "adtrack-dead-letters" with the reason.

Attribution, postbacks and stats run exactly once, in Kafka transactions, so
a crash does not make a postback request twice; --exactly-once=false trades
that for speed. The URL worker is at least once towards the networks either
way, and sends each request with the same X-Request-Id on every retry.`,
		Example: `  sluice run adtrack --postbacks postbacks.yaml
  sluice run adtrack --postbacks postbacks.yaml --brokers kafka-1:9092
  sluice run adtrack --postbacks postbacks.yaml --exactly-once=false   # faster; a crash may send a postback again
  curl 127.0.0.1:9097/clickstats/46`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			var ps *adtrack.Postbacks
			if postbacks != "" {
				if ps, err = adtrack.LoadPostbacks(postbacks); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			brokers, stop, err := f.connect(ctx, logger, out)
			if err != nil {
				return err
			}
			defer stop()
			cfg := adtrack.Config{Brokers: brokers, Postbacks: ps, StatsAddr: statsAddr, Logger: logger}
			if stateDir != "" {
				cfg.Storage = func(group string) store.Builder { return pebble.Builder(filepath.Join(stateDir, group)) }
			}
			cfg.AtLeastOnce = !exactlyOnce
			n := 0
			if ps != nil {
				n = len(ps.All())
			}
			addr := strings.Join(brokers, ",")
			cfg.StatsReady = func(a net.Addr) {
				fmt.Fprintf(out, "stats    http://%s/clickstats/{campaign_link_id}, /pbstats/{postback_id}, /attribution\n", a)
				fmt.Fprintf(out, "groups   %s (%s), %d postbacks\n", strings.Join(adtrack.Groups, ", "), guaranteeName(exactlyOnce), n)
				fmt.Fprintf(out, "Send clicks to %q and in-app events to %q, for example:\n", adtrack.ClicksTopic, adtrack.InAppTopic)
				fmt.Fprintf(out, "  kcat -b %s -P -t %s   (one tracker event a line)\n", addr, adtrack.InAppTopic)
				fmt.Fprintf(out, "  kcat -b %s -C -t %s\n", addr, adtrack.ResultsTopic)
				fmt.Fprintln(out, "Press Ctrl-C to stop.")
			}
			return adtrack.Run(ctx, cfg)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&postbacks, "postbacks", "", "YAML file of the postbacks (default: none, no network is told)")
	cmd.Flags().StringVar(&statsAddr, "stats-addr", adtrack.DefaultStatsAddr, "address the stats are served on")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory of the groups' local stores, one subdirectory per group (default: the user's cache directory, sluice/state/<group>)")
	cmd.Flags().BoolVar(&exactlyOnce, "exactly-once", true, "attribute, count and render postbacks exactly once, with Kafka transactions; --exactly-once=false runs them at least once, so a crash may send a postback again (the URL worker is at least once either way)")
	return cmd
}

func guaranteeName(exactlyOnce bool) string {
	if exactlyOnce {
		return sluice.ExactlyOnce.String()
	}
	return sluice.AtLeastOnce.String()
}
