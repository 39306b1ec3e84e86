package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/internal/progress"
)

func newTopicsCmd(g *globalFlags) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "List, create, describe and delete topics",
		Example: `  sluice topics list
  sluice topics create orders --partitions 6
  sluice topics describe orders
  sluice topics delete orders --yes`,
		Args: cobra.NoArgs,
	}
	f.register(cmd, g)
	cmd.AddCommand(newTopicsListCmd(&f), newTopicsCreateCmd(&f), newTopicsDescribeCmd(&f), newTopicsDeleteCmd(&f))
	return cmd
}

func newTopicsListCmd(f *connFlags) *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the topics with their partitions, replication and cleanup policy",
		Example: `  sluice topics list
  sluice topics list --internal --brokers kafka-1:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := f.requestContext(cmd.Context())
			defer cancel()
			adm, cl, err := f.admin()
			if err != nil {
				return err
			}
			defer cl.Close()
			var topics kadm.TopicDetails
			if internal {
				topics, err = adm.ListTopicsWithInternal(ctx)
			} else {
				topics, err = adm.ListTopics(ctx)
			}
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			if err := topics.Error(); err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			names := topics.Names()
			policies := make(map[string]string)
			if len(names) > 0 {
				configs, err := adm.DescribeTopicConfigs(ctx, names...)
				if err != nil {
					return fmt.Errorf("describe topic configs: %w", err)
				}
				for _, rc := range configs {
					policies[rc.Name] = configValue(rc.Configs, "cleanup.policy", "delete")
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITIONS\tREPLICATION\tCLEANUP")
			for _, name := range names {
				t := topics[name]
				replication := 0
				if len(t.Partitions) > 0 {
					replication = len(t.Partitions.Sorted()[0].Replicas)
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", name, len(t.Partitions), replication, policies[name])
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&internal, "internal", false, "also list internal topics such as __consumer_offsets")
	return cmd
}

func newTopicsCreateCmd(f *connFlags) *cobra.Command {
	var (
		partitions  int32
		replication int16
		configs     []string
		compact     bool
	)
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic",
		Long: `Create a topic. Settings not given are the brokers' defaults. --compact
makes it a compacted topic (cleanup.policy=compact), as sluice tables are:
Kafka keeps at least the latest record of every key.`,
		Example: `  sluice topics create orders --partitions 6
  sluice topics create users-table --partitions 6 --compact
  sluice topics create logs --config retention.ms=86400000 --config max.message.bytes=2097152`,
		Args: exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			cfg, err := parseConfigs(configs)
			if err != nil {
				return err
			}
			if compact {
				if v, ok := cfg["cleanup.policy"]; ok && *v != "compact" {
					return fmt.Errorf("--compact and --config cleanup.policy=%s disagree", *v)
				}
				c := "compact"
				cfg["cleanup.policy"] = &c
			}
			if partitions == 0 || partitions < -1 {
				return fmt.Errorf("--partitions %d: want a positive count, or -1 for the brokers' default", partitions)
			}
			if replication == 0 || replication < -1 {
				return fmt.Errorf("--replication %d: want a positive count, or -1 for the brokers' default", replication)
			}
			ctx, cancel := f.requestContext(cmd.Context())
			defer cancel()
			adm, cl, err := f.admin()
			if err != nil {
				return err
			}
			defer cl.Close()
			resp, err := adm.CreateTopic(ctx, partitions, replication, cfg, name)
			if err == nil {
				err = resp.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("topic %s already exists", name)
			}
			if err != nil {
				if resp.ErrMessage != "" {
					err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
				}
				return fmt.Errorf("create topic %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created topic %s: %d partitions, replication %d\n", name, resp.NumPartitions, resp.ReplicationFactor)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.Int32Var(&partitions, "partitions", -1, "number of partitions (-1: the brokers' default)")
	fs.Int16Var(&replication, "replication", -1, "replication factor (-1: the brokers' default)")
	fs.StringArrayVar(&configs, "config", nil, "topic config as key=value, repeatable")
	fs.BoolVar(&compact, "compact", false, "make the topic compacted (cleanup.policy=compact)")
	return cmd
}

func newTopicsDeleteCmd(f *connFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete TOPIC...",
		Short: "Delete topics and all their records",
		Long: `Delete topics and all their records. This cannot be undone, so it needs
--yes.`,
		Example: `  sluice topics delete orders --yes`,
		Args:    topicArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting %s removes all its records; pass --yes to confirm", strings.Join(args, ", "))
			}
			ctx, cancel := f.requestContext(cmd.Context())
			defer cancel()
			adm, cl, err := f.admin()
			if err != nil {
				return err
			}
			defer cl.Close()
			resps, err := adm.DeleteTopics(ctx, args...)
			if err != nil {
				return fmt.Errorf("delete topics: %w", err)
			}
			var errs []error
			for _, name := range args {
				r, ok := resps[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("delete topic %s: no answer from the brokers", name))
				case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
					errs = append(errs, fmt.Errorf("topic %s does not exist", name))
				case r.Err != nil:
					errs = append(errs, fmt.Errorf("delete topic %s: %w", name, r.Err))
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", name)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

func newTopicsDescribeCmd(f *connFlags) *cobra.Command {
	var sample time.Duration
	cmd := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Show a topic's partitions, offsets, settings and traffic",
		Long: `Show a topic's partitions (leader, start and end offset, records kept),
its cleanup policy and retention, configs set on it, and its traffic measured
over the --sample window:

  messages in   records appended per second (growth of the end offsets)
  bytes in      their size per second: keys, values and headers
  messages out  records per second that consumer groups committed past
                (growth of their committed offsets, all groups together)
  bytes out     the size per second of the records committed past

Sizes are measured by reading the records of the window, up to 500 per
partition; beyond that they are estimated from the average size read.
--sample 0 skips the traffic.`,
		Example: `  sluice topics describe orders
  sluice topics describe orders --sample 10s
  sluice topics describe orders --sample 0`,
		Args: exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sample < 0 {
				return fmt.Errorf("--sample %s: want a duration, or 0 to not measure", sample)
			}
			return describeTopic(cmd.Context(), f, cmd.OutOrStdout(), args[0], sample)
		},
	}
	cmd.Flags().DurationVar(&sample, "sample", 2*time.Second, "how long to measure the traffic over (0: do not measure)")
	return cmd
}

// configValue returns the value of the config key, or def if it is not set.
func configValue(configs []kadm.Config, key, def string) string {
	for _, c := range configs {
		if c.Key == key && c.Value != nil {
			return *c.Value
		}
	}
	return def
}

// retention describes how long and how much a topic keeps.
func retention(configs []kadm.Config) string {
	var parts []string
	switch ms := configValue(configs, "retention.ms", ""); ms {
	case "":
		parts = append(parts, "time: the brokers' default")
	case "-1":
		parts = append(parts, "time: forever")
	default:
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			parts = append(parts, "time: "+days(time.Duration(n)*time.Millisecond))
		} else {
			parts = append(parts, "time: "+ms+" ms")
		}
	}
	switch b := configValue(configs, "retention.bytes", ""); b {
	case "":
		parts = append(parts, "size: the brokers' default")
	case "-1":
		parts = append(parts, "size: unlimited")
	default:
		if n, err := strconv.ParseInt(b, 10, 64); err == nil {
			parts = append(parts, "size: "+progress.Bytes(n)+" per partition")
		} else {
			parts = append(parts, "size: "+b+" bytes per partition")
		}
	}
	return strings.Join(parts, ", ")
}

// days formats d in days when it is a whole number of them.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// setConfigs lists the configs set on a topic itself, as key=value.
func setConfigs(configs []kadm.Config) []string {
	var set []string
	for _, c := range configs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
			set = append(set, c.Key+"="+*c.Value)
		}
	}
	sort.Strings(set)
	return set
}

// parseConfigs parses key=value pairs.
func parseConfigs(pairs []string) (map[string]*string, error) {
	cfg := make(map[string]*string, len(pairs))
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q: want key=value", kv)
		}
		cfg[k] = &v
	}
	return cfg, nil
}

// exactArgs accepts exactly the named arguments and says which are missing,
// and which is empty or, for a TOPIC, not a name Kafka accepts.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return fmt.Errorf("%s: missing %s (see %s --help)", cmd.CommandPath(), strings.Join(names[len(args):], " "), cmd.CommandPath())
		}
		if len(args) > len(names) {
			return fmt.Errorf("%s: unexpected arguments %s (want %s)", cmd.CommandPath(), strings.Join(args[len(names):], " "), strings.Join(names, " "))
		}
		for i, name := range names {
			if err := checkArg(cmd, name, args[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

// topicArgs accepts one or more topic names.
func topicArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: missing TOPIC (see %s --help)", cmd.CommandPath(), cmd.CommandPath())
	}
	for _, arg := range args {
		if err := checkArg(cmd, "TOPIC", arg); err != nil {
			return err
		}
	}
	return nil
}

// checkArg says why the argument named name cannot be value: it is empty,
// or a TOPIC that is not a name Kafka accepts, which no topic can have.
func checkArg(cmd *cobra.Command, name, value string) error {
	if name == "TOPIC" {
		if err := kafka.CheckTopicName(value); err != nil {
			return fmt.Errorf("%s: TOPIC: %w", cmd.CommandPath(), err)
		}
	}
	if value == "" {
		return fmt.Errorf("%s: %s is empty", cmd.CommandPath(), name)
	}
	return nil
}

// plural counts n things, as "1 topic" or "2 topics".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
