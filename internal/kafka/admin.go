// Package kafka holds the Kafka wiring sluice needs and users must not
// depend on: the partitioner, the co-partitioning group balancer and topic
// administration.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicSpec describes a topic to create when it does not exist.
type TopicSpec struct {
	Name        string
	Partitions  int32
	Replication int16
	Compacted   bool
	// Configs are further topic configs to create it with, such as
	// cleanup.policy=compact,delete and retention.ms; a cleanup.policy
	// here takes the place of Compacted's.
	Configs map[string]string
}

// EnsureTopics creates the topics that do not exist yet and returns the
// partition count of every topic named in specs.
func EnsureTopics(ctx context.Context, cl *kgo.Client, specs ...TopicSpec) (map[string]int32, error) {
	adm := kadm.NewClient(cl)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	counts, missing, err := PartitionCounts(ctx, cl, names...)
	if err != nil {
		return nil, err
	}
	for _, s := range specs {
		if _, ok := missing[s.Name]; !ok {
			continue
		}
		configs := make(map[string]*string, len(s.Configs)+1)
		if s.Compacted {
			compact := "compact"
			configs["cleanup.policy"] = &compact
		}
		for k, v := range s.Configs {
			configs[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, s.Replication, configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return nil, fmt.Errorf("create topic %s: %w", s.Name, err)
		}
		delete(missing, s.Name)
	}
	if len(specs) > 0 {
		// Read back what exists now: another process may have created a
		// topic first, with other settings.
		counts, missing, err = PartitionCounts(ctx, cl, names...)
		if err != nil {
			return nil, err
		}
		for name := range missing {
			return nil, fmt.Errorf("topic %s: still missing after creating it", name)
		}
	}
	return counts, nil
}

// PartitionCounts returns the partition count of each topic that exists, and
// the set of those that do not. It asks the brokers rather than the client's
// metadata cache, which can be seconds old, and so refreshes that cache.
func PartitionCounts(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]int32, map[string]struct{}, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: %w", err)
	}
	counts := make(map[string]int32, len(topics))
	missing := make(map[string]struct{})
	for _, t := range topics {
		missing[t] = struct{}{}
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil {
			continue
		}
		name := *rt.Topic
		err := kerr.ErrorForCode(rt.ErrorCode)
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
		case err != nil:
			return nil, nil, fmt.Errorf("describe topic %s: %w", name, err)
		default:
			counts[name] = int32(len(rt.Partitions))
			delete(missing, name)
		}
	}
	return counts, missing, nil
}

// EndOffsets returns the offset after the last record of each partition of
// topic: the high watermark, or with committed set the last stable offset,
// below which every transaction is decided.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string, committed bool) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	var (
		listed kadm.ListedOffsets
		err    error
	)
	if committed {
		listed, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		listed, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	ends := make(map[int32]int64)
	var firstErr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && firstErr == nil {
			firstErr = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
		}
		ends[o.Partition] = o.Offset
	})
	return ends, firstErr
}

// Transient reports whether err is one a later attempt may not meet: a
// broker that could not be reached, or a Kafka error the protocol marks
// retriable. A cancelled context, a closed client and every other error
// are definitive.
func Transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
		return false
	case kerr.IsRetriable(err):
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
}
