package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxTopicName is the longest topic name Kafka takes.
const maxTopicName = 249

// checkTopicName applies Kafka's rules for a topic's name: not empty, not
// "." or "..", at most 249 characters, each an ASCII letter, a digit, '.',
// '_' or '-'.
func checkTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > maxTopicName:
		return fmt.Errorf("topic name of %d characters is too long: at most %d", len(name), maxTopicName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q: %q is not allowed, only ASCII letters, digits, '.', '_' and '-'", name, c)
		}
	}
	return nil
}

// refuseBadTopicNames is the broker's CreateTopics control. kfake creates a
// topic of any name, and names each partition's directory in the data dir
// after it: a name too long for a file name leaves a data dir the broker
// can no longer load, and an empty name is answered as created while no
// topic is. So a request that names a topic Kafka would refuse is answered
// here, as Kafka answers it: INVALID_TOPIC_EXCEPTION with the reason. Its
// other topics are not created either (INVALID_REQUEST), so that the
// request is all or nothing; a request of good names goes on to kfake.
func (b *Broker) refuseBadTopicNames(kreq kmsg.Request) (kmsg.Response, error, bool) {
	req, ok := kreq.(*kmsg.CreateTopicsRequest)
	if !ok {
		return nil, nil, false
	}
	bad := make(map[string]string)
	for _, t := range req.Topics {
		if err := checkTopicName(t.Topic); err != nil {
			bad[t.Topic] = err.Error()
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
		msg, isBad := bad[t.Topic]
		if isBad {
			st.ErrorCode = kerr.InvalidTopicException.Code
		} else {
			st.ErrorCode = kerr.InvalidRequest.Code
			msg = "not created: the request also names a topic that is not allowed"
		}
		st.ErrorMessage = &msg
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}
