package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/kafka"
)

// refuseBadTopics is the broker's CreateTopics control. kfake creates a
// topic of any name, and names each partition's directory in the data dir
// after it: a name too long for a file name leaves a data dir the broker
// can no longer load, and an empty name is answered as created while no
// topic is. It takes any config too (topicconfigs.go). So a request that
// names a topic or sets a config Kafka would refuse is answered here, as
// Kafka answers it: INVALID_TOPIC_EXCEPTION or INVALID_CONFIG with the
// reason. Its other topics are not created either (INVALID_REQUEST), so
// that the request is all or nothing; a request Kafka would take goes on
// to kfake.
func (b *Broker) refuseBadTopics(kreq kmsg.Request) (kmsg.Response, error, bool) {
	req, ok := kreq.(*kmsg.CreateTopicsRequest)
	if !ok {
		return nil, nil, false
	}
	type refusal struct {
		code int16
		msg  string
	}
	bad := make(map[string]refusal)
	for _, t := range req.Topics {
		if err := kafka.CheckTopicName(t.Topic); err != nil {
			bad[t.Topic] = refusal{kerr.InvalidTopicException.Code, err.Error()}
			continue
		}
		n := int64(t.NumPartitions)
		if len(t.ReplicaAssignment) > 0 {
			n = int64(len(t.ReplicaAssignment))
		}
		if err := checkPartitionCount(n); err != nil {
			bad[t.Topic] = refusal{kerr.InvalidPartitions.Code, err.Error()}
			continue
		}
		for _, c := range t.Configs {
			if err := checkTopicConfig(c.Name, c.Value); err != nil {
				bad[t.Topic] = refusal{kerr.InvalidConfig.Code, err.Error()}
				break
			}
		}
	}
	if len(bad) == 0 {
		return nil, nil, false
	}
	b.cluster.KeepControl()
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, t := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = t.Topic
		r, isBad := bad[t.Topic]
		if !isBad {
			r = refusal{kerr.InvalidRequest.Code, "not created: the request also names a topic that Kafka would refuse"}
		}
		st.ErrorCode = r.code
		st.ErrorMessage = &r.msg
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}

// refuseBadTopicConfigs is the broker's control of AlterConfigs and
// IncrementalAlterConfigs: a request that sets a topic config Kafka would
// refuse is answered here, INVALID_CONFIG with the reason for each topic
// that does, INVALID_REQUEST for its other resources, which are not
// altered either; a request Kafka would take goes on to kfake.
func (b *Broker) refuseBadTopicConfigs(kreq kmsg.Request) (kmsg.Response, error, bool) {
	bad := make(map[string]string) // reason, by topic
	switch req := kreq.(type) {
	case *kmsg.AlterConfigsRequest:
		for _, r := range req.Resources {
			if r.ResourceType != kmsg.ConfigResourceTypeTopic {
				continue
			}
			for _, c := range r.Configs {
				if err := checkTopicConfig(c.Name, c.Value); err != nil {
					bad[r.ResourceName] = err.Error()
					break
				}
			}
		}
		if len(bad) == 0 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		for _, r := range req.Resources {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			rr.ErrorCode, rr.ErrorMessage = refusedResource(bad, r.ResourceType, r.ResourceName)
			resp.Resources = append(resp.Resources, rr)
		}
		b.cluster.KeepControl()
		return resp, nil, true
	case *kmsg.IncrementalAlterConfigsRequest:
		for _, r := range req.Resources {
			if r.ResourceType != kmsg.ConfigResourceTypeTopic {
				continue
			}
			for _, c := range r.Configs {
				if err := checkAlteredTopicConfig(c); err != nil {
					bad[r.ResourceName] = err.Error()
					break
				}
			}
		}
		if len(bad) == 0 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, r := range req.Resources {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			rr.ErrorCode, rr.ErrorMessage = refusedResource(bad, r.ResourceType, r.ResourceName)
			resp.Resources = append(resp.Resources, rr)
		}
		b.cluster.KeepControl()
		return resp, nil, true
	}
	return nil, nil, false
}

// refusedResource is the error of one resource of a refused config request.
func refusedResource(bad map[string]string, typ kmsg.ConfigResourceType, name string) (int16, *string) {
	if msg, ok := bad[name]; ok && typ == kmsg.ConfigResourceTypeTopic {
		return kerr.InvalidConfig.Code, &msg
	}
	msg := "not altered: the request also sets a topic config that Kafka would refuse"
	return kerr.InvalidRequest.Code, &msg
}

// MaxPartitions is the most partitions a topic of the embedded broker can
// have. The broker keeps every partition in memory and gives each its own
// directory in the data dir; a request for two billion of them, which
// Kafka's protocol allows, would take the machine's memory before it was
// answered. Ten thousand is far more than one machine runs.
const MaxPartitions = 10000

func checkPartitionCount(n int64) error {
	if n > MaxPartitions {
		return fmt.Errorf("%d partitions: the embedded broker holds at most %d partitions a topic", n, MaxPartitions)
	}
	return nil
}

// refuseTooManyPartitions is the broker's CreatePartitions control: a
// request that would take a topic beyond MaxPartitions is answered
// INVALID_PARTITIONS for that topic, and INVALID_REQUEST for its other
// topics, which do not grow either; a request within the limit goes on to
// kfake.
func (b *Broker) refuseTooManyPartitions(kreq kmsg.Request) (kmsg.Response, error, bool) {
	req, ok := kreq.(*kmsg.CreatePartitionsRequest)
	if !ok {
		return nil, nil, false
	}
	bad := make(map[string]string)
	for _, t := range req.Topics {
		if err := checkPartitionCount(int64(t.Count)); err != nil {
			bad[t.Topic] = err.Error()
		}
	}
	if len(bad) == 0 {
		return nil, nil, false
	}
	b.cluster.KeepControl()
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, t := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = t.Topic
		msg, isBad := bad[t.Topic]
		st.ErrorCode = kerr.InvalidPartitions.Code
		if !isBad {
			st.ErrorCode, msg = kerr.InvalidRequest.Code, "not grown: the request also takes a topic beyond the broker's partitions"
		}
		st.ErrorMessage = &msg
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}
