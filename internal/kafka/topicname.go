package kafka

import (
	"errors"
	"fmt"
)

// MaxTopicName is the longest topic name Kafka accepts.
const MaxTopicName = 249

// CheckTopicName reports why Kafka would refuse topic as a topic name: it
// is empty, "." or "..", longer than MaxTopicName, or holds a character
// other than an ASCII letter, a digit, '.', '_' or '-'.
func CheckTopicName(topic string) error {
	switch {
	case topic == "":
		return errors.New("topic name is empty")
	case topic == "." || topic == "..":
		return fmt.Errorf("topic name %q is refused by Kafka", topic)
	case len(topic) > MaxTopicName:
		return fmt.Errorf("topic name %q… is %d bytes long; Kafka accepts at most %d", topic[:32], len(topic), MaxTopicName)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q holds %q; Kafka accepts only ASCII letters, digits, '.', '_' and '-'", topic, r)
		}
	}
	return nil
}
