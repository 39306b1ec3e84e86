package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/wordcount"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

func newRunCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a bundled app",
		Long:  `Run one of the apps that come with sluice, on the embedded broker or on a Kafka cluster.`,
		Example: `  sluice run wordcount --store table
  sluice run wordcount --brokers kafka-1:9092,kafka-2:9092 --exactly-once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("name an app to run: %s", strings.Join(appNames(cmd), ", "))
		},
	}
	cmd.AddCommand(newWordCountCmd(g), newAdTrackCmd(g), newLogdrainCmd(g), newExportCmd(g), newReplayCmd(g))
	return cmd
}

func appNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		names = append(names, c.Name())
	}
	return names
}

// appFlags are the flags of commands that run an app: where Kafka is.
type appFlags struct {
	broker  brokerFlags
	brokers []string
	cmd     *cobra.Command // whose flags they are, to tell a --brokers given empty
}

func (f *appFlags) register(cmd *cobra.Command) {
	f.broker.register(cmd, "127.0.0.1:9092")
	cmd.Flags().StringSliceVar(&f.brokers, "brokers", nil, "use these Kafka brokers instead of starting the embedded one")
	f.cmd = cmd
}

// brokersGiven reports whether --brokers names brokers to use instead of
// the embedded one. Given empty (an unset variable, a stray comma), it is
// an error: starting the embedded broker instead would run the app where
// its user did not ask.
func brokersGiven(cmd *cobra.Command, brokers []string) (bool, error) {
	if !cmd.Flags().Changed("brokers") {
		return false, nil
	}
	if len(brokers) == 0 {
		return false, errors.New("--brokers is empty: give host:port of at least one Kafka broker, or leave the flag out to start the embedded broker")
	}
	if err := checkBrokerAddrs(brokers); err != nil {
		return false, err
	}
	return true, nil
}

// brokerStartError adds to an error of broker.Start what the user can do
// about it: the flag that moves away from what another broker holds.
func brokerStartError(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w (is another sluice broker or demo running? pass --addr to use another port, or --brokers to use it)", err)
	case errors.Is(err, broker.ErrDataDirInUse):
		return fmt.Errorf("%w (is another sluice broker or demo running? pass --data-dir to use another directory, --in-memory to use none, or --brokers to use it)", err)
	}
	return err
}

// connect returns the brokers to use, starting the embedded one unless
// --brokers names others; stop stops what it started.
func (f *appFlags) connect(ctx context.Context, logger *slog.Logger, out io.Writer) (brokers []string, stop func(), err error) {
	given, err := brokersGiven(f.cmd, f.brokers)
	if err != nil {
		return nil, nil, err
	}
	if given {
		return f.brokers, func() {}, nil
	}
	opts, dir, err := f.broker.options()
	if err != nil {
		return nil, nil, err
	}
	b, err := broker.Start(ctx, append(opts, broker.Logger(logger.With("component", "broker")))...)
	if err != nil {
		return nil, nil, brokerStartError(err)
	}
	where := "in memory"
	if dir != "" {
		where = "data in " + dir
	}
	fmt.Fprintf(out, "broker   %s (%s)\n", b.Addrs()[0], where)
	return b.Addrs(), func() { _ = b.Close() }, nil
}

func newWordCountCmd(g *globalFlags) *cobra.Command {
	var (
		f           appFlags
		store       string
		stateDir    string
		batchSize   int
		batchWait   time.Duration
		exactlyOnce bool
	)
	cmd := &cobra.Command{
		Use:   "wordcount",
		Short: "Count words in batches (Kasper's word count)",
		Long: `Run the word count: lines of text sent to "words" are split on white space,
every word is counted, and for each word read "<word> has been seen <N> times"
is written to "word-counts", N being the count before this occurrence. Words
are handled in batches of up to --batch-size records per partition, or what
arrived within --batch-wait.

--store says where the counts are kept: "memory" (lost on exit), "table" (the
group's changelogged table "word-count-table", kept across runs), or a Redis
URL.`,
		Example: `  sluice run wordcount --store table
  echo "the quick brown fox jumps over the lazy dog" | kcat -b 127.0.0.1:9092 -P -t words
  kcat -b 127.0.0.1:9092 -C -t word-counts -f '%s\n'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, err := g.logger()
			if err != nil {
				return err
			}
			if batchSize <= 0 {
				return fmt.Errorf("--batch-size %d: want a positive number of records", batchSize)
			}
			if batchWait <= 0 {
				return fmt.Errorf("--batch-wait %v: want a positive duration", batchWait)
			}
			out := cmd.OutOrStdout()
			brokers, stop, err := f.connect(ctx, logger, out)
			if err != nil {
				return err
			}
			defer stop()
			cfg := wordcount.Config{
				Brokers:   brokers,
				Store:     store,
				BatchSize: batchSize,
				BatchWait: batchWait,
				Logger:    logger,
			}
			if stateDir != "" {
				cfg.Storage = pebble.Builder(stateDir)
			}
			if exactlyOnce {
				cfg.Guarantee = sluice.ExactlyOnce
			}
			addr := strings.Join(brokers, ",")
			fmt.Fprintf(out, "counting words of %q into %q, counts in %s. Try:\n", wordcount.Input, wordcount.Output, store)
			fmt.Fprintf(out, "  echo \"the quick brown fox jumps over the lazy dog\" | kcat -b %s -P -t %s\n", addr, wordcount.Input)
			fmt.Fprintf(out, "  kcat -b %s -C -t %s -f '%%s\\n'\n", addr, wordcount.Output)
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			return wordcount.Run(ctx, cfg)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&store, "store", "memory", "where counts are kept: memory, table or redis://host:port")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory of the table's local store (default: the user's cache directory, sluice/state/<group>)")
	cmd.Flags().IntVar(&batchSize, "batch-size", 1000, "records per batch, at most")
	cmd.Flags().DurationVar(&batchWait, "batch-wait", 5*time.Second, "how long a batch waits for more records after its first")
	cmd.Flags().BoolVar(&exactlyOnce, "exactly-once", false, "count exactly once, with Kafka transactions")
	return cmd
}
