package main

// What `sluice topics describe` measures: a topic's partitions, offsets,
// traffic over a sample window, record sizes and the groups that read it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/progress"
)

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
