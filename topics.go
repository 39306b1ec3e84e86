package sluice

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
)

// ensureTopics creates what is missing and checks co-partitioning.
func (p *Processor[V]) ensureTopics(ctx context.Context) (map[string]int32, error) {
	cl, err := kgo.NewClient(p.cfg.client.kgoOpts()...)
	if err != nil {
		return nil, fmt.Errorf("group %s: client: %w", p.g.name, err)
	}
	defer cl.Close()
	def := p.cfg.client
	var inputs []kafka.TopicSpec
	for _, in := range p.g.inputs {
		if !in.loop {
			inputs = append(inputs, kafka.TopicSpec{Name: in.topic, Partitions: def.partitions, Replication: def.replication})
		}
	}
	counts, err := kafka.EnsureTopics(ctx, cl, inputs...)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", p.g.name, err)
	}
	n := def.partitions
	if len(inputs) > 0 {
		n = counts[inputs[0].Name]
	}
	// Topics that belong to the group follow its inputs' partition count.
	var owned []kafka.TopicSpec
	if p.g.Persisted() {
		owned = append(owned, kafka.TopicSpec{Name: p.g.TableTopic(), Partitions: n, Replication: def.replication, Compacted: true})
	}
	if p.g.windowLogged() {
		owned = append(owned, windowsTopicSpec(p.g, p.cfg.windowsMargin, n, def.replication))
	}
	for _, in := range p.g.inputs {
		if in.loop {
			owned = append(owned, kafka.TopicSpec{Name: in.topic, Partitions: n, Replication: def.replication})
		}
	}
	for _, j := range p.g.joins {
		owned = append(owned, kafka.TopicSpec{Name: j.topic, Partitions: n, Replication: def.replication, Compacted: true})
	}
	for _, o := range slices.Sorted(maps.Keys(p.g.outputs)) {
		owned = append(owned, kafka.TopicSpec{Name: o, Partitions: def.partitions, Replication: def.replication})
	}
	if p.cfg.policy.kind == deadLetterPolicy {
		owned = append(owned, kafka.TopicSpec{Name: p.cfg.policy.topic, Partitions: def.partitions, Replication: def.replication})
	}
	more, err := kafka.EnsureTopics(ctx, cl, owned...)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", p.g.name, err)
	}
	maps.Copy(counts, more)
	copartitioned := make(map[string]int32)
	for _, in := range p.g.inputs {
		copartitioned[in.topic] = counts[in.topic]
	}
	if p.g.Persisted() {
		copartitioned[p.g.TableTopic()] = counts[p.g.TableTopic()]
	}
	if p.g.windowLogged() {
		copartitioned[p.g.WindowsTopic()] = counts[p.g.WindowsTopic()]
	}
	for _, j := range p.g.joins {
		copartitioned[j.topic] = counts[j.topic]
	}
	for _, c := range copartitioned {
		if c != n {
			return nil, &CopartitionError{Group: p.g.name, Counts: copartitioned}
		}
	}
	p.placement.partitions = n
	return copartitioned, nil
}

// checkTopicName reports why Kafka would refuse topic as a topic name, so
// that a definition or constructor fails at once rather than Run, or a view
// waiting for a topic that cannot exist.
func checkTopicName(topic string) error { return kafka.CheckTopicName(topic) }

// checkGroupTopics reports why the group called name cannot name the
// topics it keeps, which are named after it. A consumer group id may be
// any string: a group that keeps no topic may have any name.
func checkGroupTopics(name string, topics ...string) error {
	for _, topic := range topics {
		if err := checkTopicName(topic); err != nil {
			return fmt.Errorf("group name %q cannot name the group's topics: %w", name, err)
		}
	}
	return nil
}
