package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// globalFlags are the flags every command has.
type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Stateful stream processing for Kafka",
		Long: `sluice runs typed Go stream processors over Kafka partitions, with local
state tables backed by compacted changelog topics.

This command runs an embedded Kafka-protocol broker, the demo, and the
bundled apps, and operates any Kafka cluster: topics, produce, tail, groups
and lag connect to --brokers (default 127.0.0.1:9092, the embedded broker),
with TLS and SASL when asked.`,
		Example: `  sluice broker                                   # a broker on 127.0.0.1:9092
  sluice topics create orders --partitions 3
  printf 'k1:v1\nk2:v2\n' | sluice produce orders --key-separator :
  sluice tail orders --from beginning -f
  sluice lag order-group --threshold 1000`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newBrokerCmd(&g), newDemoCmd(&g), newRunCmd(&g), newVersionCmd())
	root.AddCommand(newTopicsCmd(&g), newProduceCmd(&g), newTailCmd(&g), newGroupsCmd(&g), newLagCmd(&g))
	return root
}

// logger builds the logger the flags ask for.
func (g *globalFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of sluice",
		Example: "  sluice version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			version := "(devel)"
			if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
				version = info.Main.Version
			}
			fmt.Fprintln(cmd.OutOrStdout(), "sluice", version)
		},
	}
}
