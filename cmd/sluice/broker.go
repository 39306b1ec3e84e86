package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/broker"
)

// brokerFlags are the flags of commands that start the embedded broker.
type brokerFlags struct {
	addr     string
	dataDir  string
	inMemory bool
}

func (f *brokerFlags) register(cmd *cobra.Command, addrDefault string) {
	cmd.Flags().StringVar(&f.addr, "addr", addrDefault, "address the embedded broker listens on")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "directory the embedded broker keeps its data in (default: the user's data directory, sluice/broker)")
	cmd.Flags().BoolVar(&f.inMemory, "in-memory", false, "keep the broker's data in memory only; it is lost on exit")
}

// options returns the broker options the flags ask for.
func (f *brokerFlags) options() ([]broker.Opt, string, error) {
	// Like Kafka's default (auto.create.topics.enable), so that kcat and
	// other tools can write to a topic without creating it first.
	opts := []broker.Opt{broker.Addr(f.addr), broker.AllowAutoTopicCreation()}
	if f.inMemory {
		return opts, "", nil
	}
	dir := f.dataDir
	if dir == "" {
		var err error
		if dir, err = broker.DefaultDataDir(); err != nil {
			return nil, "", err
		}
	}
	return append(opts, broker.DataDir(dir)), dir, nil
}

func newBrokerCmd(g *globalFlags) *cobra.Command {
	var f brokerFlags
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker",
		Long: `Run a single-node Kafka-protocol broker that any Kafka client (kcat,
librdkafka, the Java client, franz-go) can use. Topics, records and consumer
group offsets are kept in the data directory and survive restarts.`,
		Example: `  sluice broker
  sluice broker --addr 127.0.0.1:9092 --data-dir /var/lib/sluice/broker
  kcat -b 127.0.0.1:9092 -L`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger()
			if err != nil {
				return err
			}
			opts, dir, err := f.options()
			if err != nil {
				return err
			}
			b, err := broker.Start(cmd.Context(), append(opts, broker.Logger(logger))...)
			if err != nil {
				return err
			}
			where := "in memory"
			if dir != "" {
				where = "data in " + dir
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sluice broker listening on %s (%s)\n", b.Addrs()[0], where)
			<-cmd.Context().Done()
			return b.Close()
		},
	}
	f.register(cmd, "127.0.0.1:9092")
	return cmd
}
