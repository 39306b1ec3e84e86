package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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
		Args:    cobra.MinimumNArgs(1),
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
			return describeTopic(cmd.Context(), f, cmd.OutOrStdout(), args[0], sample)
		},
	}
	cmd.Flags().DurationVar(&sample, "sample", 2*time.Second, "how long to measure the traffic over (0: do not measure)")
	return cmd
}

func describeTopic(ctx context.Context, f *connFlags, out io.Writer, name string, sample time.Duration) error {
	adm, cl, err := f.admin()
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := f.requestContext(ctx)
	defer cancel()
	topics, err := adm.ListTopics(rctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", name, err)
	}
	t, ok := topics[name]
	if !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s does not exist", name)
	}
	if t.Err != nil {
		return fmt.Errorf("describe topic %s: %w", name, t.Err)
	}
	configs, err := adm.DescribeTopicConfigs(rctx, name)
	if err != nil {
		return fmt.Errorf("describe configs of %s: %w", name, err)
	}
	rc, err := configs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("describe configs of %s: %w", name, err)
	}
	starts, err := listOffsets(rctx, adm.ListStartOffsets, name)
	if err != nil {
		return err
	}
	ends, err := listOffsets(rctx, adm.ListEndOffsets, name)
	if err != nil {
		return err
	}
	cancel()

	parts := t.Partitions.Sorted()
	replication := 0
	if len(parts) > 0 {
		replication = len(parts[0].Replicas)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "topic\t%s\n", name)
	fmt.Fprintf(w, "partitions\t%d\n", len(parts))
	fmt.Fprintf(w, "replication\t%d\n", replication)
	policy := configValue(rc.Configs, "cleanup.policy", "delete")
	if strings.Contains(policy, "compact") {
		fmt.Fprintf(w, "cleanup\t%s (compacted: at least the latest record of each key is kept)\n", policy)
	} else {
		fmt.Fprintf(w, "cleanup\t%s\n", policy)
	}
	fmt.Fprintf(w, "retention\t%s\n", retention(rc.Configs))
	if set := setConfigs(rc.Configs); len(set) > 0 {
		fmt.Fprintf(w, "configs\t%s\n", strings.Join(set, ", "))
	}
	if err := w.Flush(); err != nil {
		return err
	}

	if sample > 0 {
		tr, err := measureTraffic(ctx, f, adm, cl, name, ends, sample)
		if err != nil {
			return err
		}
		ends = tr.ends
		fmt.Fprintf(out, "\ntraffic over %s:\n", sample)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "  messages in\t%.1f/s\n", tr.msgsIn)
		fmt.Fprintf(w, "  bytes in\t%s/s\n", progress.Bytes(int64(tr.bytesIn)))
		fmt.Fprintf(w, "  messages out\t%.1f/s\t(%s)\n", tr.msgsOut, plural(tr.groups, "consumer group"))
		fmt.Fprintf(w, "  bytes out\t%s/s\n", progress.Bytes(int64(tr.bytesOut)))
		if err := w.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PARTITION\tLEADER\tSTART\tEND\tRECORDS")
	for _, p := range parts {
		start, end := starts[p.Partition], ends[p.Partition]
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\n", p.Partition, p.Leader, start, end, max(end-start, 0))
	}
	return w.Flush()
}

// traffic is a topic's traffic measured over a sample window.
type traffic struct {
	msgsIn, bytesIn, msgsOut, bytesOut float64
	groups                             int
	ends                               map[int32]int64 // end offsets at the end of the window
}

// measureTraffic samples the end offsets of topic and the committed offsets
// of every group on it at the start and the end of the window, and reads
// the records in between to size them.
func measureTraffic(ctx context.Context, f *connFlags, adm *kadm.Client, cl *kgo.Client, topic string, ends0 map[int32]int64, window time.Duration) (traffic, error) {
	rctx, cancel := f.requestContext(ctx)
	commits0, err := groupCommits(rctx, adm, topic)
	cancel()
	if err != nil {
		return traffic{}, err
	}
	began := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return traffic{}, ctx.Err()
	}
	rctx, cancel = f.requestContext(ctx)
	defer cancel()
	ends1, err := listOffsets(rctx, adm.ListEndOffsets, topic)
	if err != nil {
		return traffic{}, err
	}
	commits1, err := groupCommits(rctx, adm, topic)
	if err != nil {
		return traffic{}, err
	}
	secs := time.Since(began).Seconds()

	in := make(map[int32][2]int64)
	var nIn int64
	for p, e1 := range ends1 {
		if e0, ok := ends0[p]; ok && e1 > e0 {
			in[p] = [2]int64{e0, e1}
			nIn += e1 - e0
		}
	}
	out := make(map[int32][2]int64)
	var nOut int64
	for g, c1 := range commits1 {
		for p, o1 := range c1 {
			// A commit past the end offset (possible after records were
			// deleted) has no records to size beyond the end.
			o1 = min(o1, ends1[p])
			if o0, ok := commits0[g][p]; ok && o1 > o0 {
				nOut += o1 - o0
				r := out[p]
				if r == [2]int64{} {
					r = [2]int64{o0, o1}
				}
				out[p] = [2]int64{min(r[0], o0), max(r[1], o1)}
			}
		}
	}
	avgIn, err := averageSize(rctx, f, topic, in)
	if err != nil {
		return traffic{}, err
	}
	avgOut, err := averageSize(rctx, f, topic, out)
	if err != nil {
		return traffic{}, err
	}
	return traffic{
		msgsIn:   float64(nIn) / secs,
		bytesIn:  float64(nIn) * avgIn / secs,
		msgsOut:  float64(nOut) / secs,
		bytesOut: float64(nOut) * avgOut / secs,
		groups:   len(commits1),
		ends:     ends1,
	}, nil
}

// sizeSample is how many records per partition averageSize reads.
const sizeSample = 500

// averageSize reads up to sizeSample records of each partition's offset
// range and returns their average size (key, value and headers).
func averageSize(ctx context.Context, f *connFlags, topic string, ranges map[int32][2]int64) (float64, error) {
	if len(ranges) == 0 {
		return 0, nil
	}
	cl, err := f.client(kgo.KeepControlRecords(), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	from := make(map[int32]int64, len(ranges))
	until := make(map[int32]int64, len(ranges))
	for p, r := range ranges {
		from[p] = r[0]
		until[p] = min(r[1], r[0]+sizeSample)
	}
	var n, size int64
	err = readPartitions(ctx, cl, topic, from, until, func(r *kgo.Record) bool {
		n++
		size += recordSize(r)
		return true
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("read %s to size its records: %w", topic, err)
	}
	if n == 0 {
		return 0, nil
	}
	return float64(size) / float64(n), nil
}

// recordSize is the size of r's key, value and headers.
func recordSize(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// groupCommits returns the offsets each consumer group committed on topic.
func groupCommits(ctx context.Context, adm *kadm.Client, topic string) (map[string]map[int32]int64, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	commits := make(map[string]map[int32]int64)
	if len(listed) == 0 {
		return commits, nil
	}
	for _, r := range adm.FetchManyOffsets(ctx, listed.Groups()...) {
		if r.Err != nil {
			return nil, fmt.Errorf("fetch offsets of group %s: %w", r.Group, r.Err)
		}
		for p, o := range r.Fetched[topic] {
			if o.Err != nil || o.At < 0 {
				continue
			}
			if commits[r.Group] == nil {
				commits[r.Group] = make(map[int32]int64)
			}
			commits[r.Group][p] = o.At
		}
	}
	return commits, nil
}

// listOffsets returns the offsets list lists for each partition of topic.
func listOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (map[int32]int64, error) {
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	offsets := make(map[int32]int64)
	var firstErr error
	listed.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			firstErr = fmt.Errorf("topic %s does not exist", topic)
		case o.Err != nil && firstErr == nil:
			firstErr = fmt.Errorf("offsets of %s/%d: %w", topic, o.Partition, o.Err)
		case o.Err == nil:
			offsets[o.Partition] = o.Offset
		}
	})
	return offsets, firstErr
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

// exactArgs accepts exactly the named arguments and says which are missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return fmt.Errorf("%s: missing %s (see %s --help)", cmd.CommandPath(), strings.Join(names[len(args):], " "), cmd.CommandPath())
		}
		if len(args) > len(names) {
			return fmt.Errorf("%s: unexpected arguments %s (want %s)", cmd.CommandPath(), strings.Join(args[len(names):], " "), strings.Join(names, " "))
		}
		return nil
	}
}

// plural counts n things, as "1 topic" or "2 topics".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
