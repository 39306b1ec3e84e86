package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice/internal/kafka"
)

func newGroupsCmd(g *globalFlags) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "List and describe consumer groups",
		Long: `List and describe consumer groups. A sluice group's consumer group has the
group's name.`,
		Example: `  sluice groups list
  sluice groups describe mini-group`,
		Args: cobra.NoArgs,
	}
	f.register(cmd, g)
	cmd.AddCommand(newGroupsListCmd(&f), newGroupsDescribeCmd(&f))
	return cmd
}

func newGroupsListCmd(f *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups with their state, protocol and member count",
		Long: `List the consumer groups with their state (Stable, Empty, PreparingRebalance,
CompletingRebalance, Dead), their protocol type (consumer for Kafka
consumers), the partition assignor they agreed on and their member count.`,
		Example: `  sluice groups list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := f.requestContext(cmd.Context())
			defer cancel()
			adm, cl, err := f.admin()
			if err != nil {
				return err
			}
			defer cl.Close()
			listed, err := adm.ListGroups(ctx)
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			described := kadm.DescribedGroups{}
			if len(listed) > 0 {
				if described, err = adm.DescribeGroups(ctx, listed.Groups()...); err != nil {
					return fmt.Errorf("describe groups: %w", err)
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "GROUP\tSTATE\tPROTOCOL TYPE\tPROTOCOL\tMEMBERS")
			for _, lg := range listed.Sorted() {
				d, ok := described[lg.Group]
				state, protocol, members := lg.State, "", 0
				if ok && d.Err == nil {
					state, protocol, members = d.State, d.Protocol, len(d.Members)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", lg.Group, dash(state), dash(lg.ProtocolType), dash(protocol), members)
			}
			return w.Flush()
		},
	}
}

func newGroupsDescribeCmd(f *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, their assignments, and its offsets and lag",
		Long: `Show a consumer group's state, its members (member id, client id, host) with
the partitions assigned to each, and per partition the committed offset, the
end offset and the lag (end minus committed: records not yet processed). A
partition without a committed offset shows "-" and counts its lag from the
partition's first record. Processors report the same lag in their Stats and
metrics.`,
		Example: `  sluice groups describe mini-group`,
		Args:    exactArgs("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := f.requestContext(cmd.Context())
			defer cancel()
			l, err := groupLag(ctx, f, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "group\t%s\n", l.Group)
			fmt.Fprintf(w, "state\t%s\n", l.State)
			fmt.Fprintf(w, "protocol\t%s %s\n", l.ProtocolType, l.Protocol)
			fmt.Fprintf(w, "coordinator\t%d (%s:%d)\n", l.Coordinator.NodeID, l.Coordinator.Host, l.Coordinator.Port)
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out)
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MEMBER\tCLIENT\tHOST\tASSIGNED")
			for _, m := range l.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.MemberID, m.ClientID, m.ClientHost, dash(assignment(m)))
			}
			if len(l.Members) == 0 {
				fmt.Fprintln(w, "(no members)\t\t\t")
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out)
			_, err = writeLag(out, l.Lag, "", true)
			return err
		},
	}
}

// lagExceeded is the exit code of lag when the total lag is above the
// threshold.
const lagExceeded = 2

// exitError is an error that asks the command line to exit with a code other
// than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the code the process exits with.
func (e *exitError) ExitCode() int { return e.code }

func newLagCmd(g *globalFlags) *cobra.Command {
	var (
		f         connFlags
		threshold int64
		topic     string
	)
	cmd := &cobra.Command{
		Use:   "lag GROUP",
		Short: "Print a group's lag per partition and in total; fail above a threshold",
		Long: `Print a consumer group's lag per partition (end offset minus committed
offset: records not yet processed) and its total.

For scripts and health checks: with --threshold N, lag exits with code 2 and
says so on stderr when the total lag is above N. Exit code 1 means the lag
could not be read (the brokers cannot be reached, the group does not exist).`,
		Example: `  sluice lag mini-group
  sluice lag mini-group --topic user-clicks
  sluice lag mini-group --threshold 1000 || alert "mini-group is behind"`,
		Args: exactArgs("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if threshold < -1 {
				return fmt.Errorf("--threshold %d: want a number of records, or -1 for never", threshold)
			}
			ctx, cancel := f.requestContext(cmd.Context())
			defer cancel()
			l, err := groupLag(ctx, &f, args[0])
			if err != nil {
				return err
			}
			if topic != "" {
				if _, ok := l.Lag[topic]; !ok {
					return fmt.Errorf("group %s has no offsets on topic %s", l.Group, topic)
				}
			}
			total, err := writeLag(cmd.OutOrStdout(), l.Lag, topic, false)
			if err != nil {
				return err
			}
			if threshold >= 0 && total > threshold {
				return &exitError{code: lagExceeded, err: fmt.Errorf("lag of group %s is %d, above the threshold %d", l.Group, total, threshold)}
			}
			return nil
		},
	}
	f.register(cmd, g)
	cmd.Flags().Int64Var(&threshold, "threshold", -1, "exit with code 2 when the total lag is above this (-1: never)")
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic's partitions")
	return cmd
}

// groupLag describes group with its lag, measured as processors measure
// theirs. A group that does not exist is an error.
func groupLag(ctx context.Context, f *connFlags, group string) (kadm.DescribedGroupLag, error) {
	adm, cl, err := f.admin()
	if err != nil {
		return kadm.DescribedGroupLag{}, err
	}
	defer cl.Close()
	return kafka.GroupLag(ctx, adm, group)
}

// writeLag prints the lag per partition of topic (or of every topic when
// topic is empty) and the total, and returns the total. Partitions whose lag
// could not be computed are listed with their error and not counted.
func writeLag(out io.Writer, lag kadm.GroupLag, topic string, members bool) (int64, error) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG"
	if members {
		header += "\tMEMBER"
	}
	fmt.Fprintln(w, header)
	var (
		total  int64
		failed []error
	)
	for _, pl := range lag.Sorted() {
		if topic != "" && pl.Topic != topic {
			continue
		}
		committed := "-"
		if pl.Commit.At >= 0 {
			committed = fmt.Sprint(pl.Commit.At)
		}
		lagText := fmt.Sprint(pl.Lag)
		if pl.Err != nil || pl.Lag < 0 {
			lagText = "?"
			failed = append(failed, fmt.Errorf("%s/%d: %w", pl.Topic, pl.Partition, pl.Err))
		} else {
			total += pl.Lag
		}
		line := fmt.Sprintf("%s\t%d\t%s\t%d\t%s", pl.Topic, pl.Partition, committed, pl.End.Offset, lagText)
		if members {
			member := "-"
			if pl.Member != nil {
				member = pl.Member.MemberID
			}
			line += "\t" + member
		}
		fmt.Fprintln(w, line)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	fmt.Fprintf(out, "total lag %d\n", total)
	if len(failed) > 0 {
		return total, fmt.Errorf("lag of %d partitions unknown: %w", len(failed), errors.Join(failed...))
	}
	return total, nil
}

// assignment lists the partitions assigned to m, as topic[0,1,2].
func assignment(m kadm.DescribedGroupMember) string {
	c, ok := m.Assigned.AsConsumer()
	if !ok {
		return ""
	}
	var parts []string
	for _, t := range c.Topics {
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		nums := make([]string, len(ps))
		for i, p := range ps {
			nums[i] = fmt.Sprint(p)
		}
		parts = append(parts, fmt.Sprintf("%s[%s]", t.Topic, strings.Join(nums, ",")))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// dash shows an empty value as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
