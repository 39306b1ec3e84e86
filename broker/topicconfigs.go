package broker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake stores any topic config it is given, by any name and with any
// value, and acts on some of them: cleanup.policy=compacted would be taken
// and leave a changelog that is never compacted, where Kafka refuses it and
// the program fails on its first cluster. So the broker holds topic configs
// to Kafka's rules before kfake sees them: the name must be one of Kafka's
// topic configs, and the value of the type and in the range Kafka accepts.

// configRule checks the value of one topic config.
type configRule func(v string) error

// topicConfigs are Kafka's topic configs, with the rule of each value. The
// configs that Kafka 4 removed (message.format.version,
// message.downconversion.enable, message.timestamp.difference.max.ms) are
// kept, since Kafka 3 clusters still take them.
var topicConfigs = map[string]configRule{
	"cleanup.policy":                          listOf("compact", "delete"),
	"compression.type":                        oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
	"compression.gzip.level":                  intIn(-1, 9),
	"compression.lz4.level":                   intIn(1, 17),
	"compression.zstd.level":                  intIn(-131072, 22),
	"delete.retention.ms":                     atLeast(0),
	"file.delete.delay.ms":                    atLeast(0),
	"flush.messages":                          atLeast(1),
	"flush.ms":                                atLeast(0),
	"follower.replication.throttled.replicas": anyString,
	"index.interval.bytes":                    intIn(0, maxInt32),
	"leader.replication.throttled.replicas":   anyString,
	"local.retention.bytes":                   atLeast(-2),
	"local.retention.ms":                      atLeast(-2),
	"max.compaction.lag.ms":                   atLeast(1),
	"max.message.bytes":                       intIn(0, maxInt32),
	"message.downconversion.enable":           boolean,
	"message.format.version":                  anyString,
	"message.timestamp.after.max.ms":          atLeast(0),
	"message.timestamp.before.max.ms":         atLeast(0),
	"message.timestamp.difference.max.ms":     atLeast(0),
	"message.timestamp.type":                  oneOf("CreateTime", "LogAppendTime"),
	"min.cleanable.dirty.ratio":               ratio,
	"min.compaction.lag.ms":                   atLeast(0),
	"min.insync.replicas":                     intIn(1, maxInt32),
	"preallocate":                             boolean,
	"remote.log.copy.disable":                 boolean,
	"remote.log.delete.on.disable":            boolean,
	"remote.storage.enable":                   boolean,
	"retention.bytes":                         atLeast(-1 << 63),
	"retention.ms":                            atLeast(-1),
	"segment.bytes":                           intIn(14, maxInt32),
	"segment.index.bytes":                     intIn(4, maxInt32),
	"segment.jitter.ms":                       atLeast(0),
	"segment.ms":                              atLeast(1),
	"unclean.leader.election.enable":          boolean,
	// kfake's own, which marks its internal topics.
	"kfake.is_internal": anyString,
}

const maxInt32 = 1<<31 - 1

func anyString(string) error { return nil }

func oneOf(values ...string) configRule {
	return func(v string) error {
		if slices.Contains(values, v) {
			return nil
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
	}
}

// listOf takes a comma-separated list of the values, in any order, or
// none.
func listOf(values ...string) configRule {
	one := oneOf(values...)
	return func(v string) error {
		if strings.TrimSpace(v) == "" {
			return nil
		}
		for item := range strings.SplitSeq(v, ",") {
			if err := one(strings.TrimSpace(item)); err != nil {
				if strings.Contains(v, ",") {
					return fmt.Errorf("%q: %w", v, err)
				}
				return err
			}
		}
		return nil
	}
}

func atLeast(lo int64) configRule {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if n < lo {
			return fmt.Errorf("%d is below the least value, %d", n, lo)
		}
		return nil
	}
}

func intIn(lo, hi int64) configRule {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is not in [%d, %d]", n, lo, hi)
		}
		return nil
	}
}

// boolean takes true or false, in any case, as Kafka does.
func boolean(v string) error {
	if b := strings.ToLower(strings.TrimSpace(v)); b == "true" || b == "false" {
		return nil
	}
	return fmt.Errorf("%q is neither true nor false", v)
}

func ratio(v string) error {
	r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || r < 0 || r > 1 {
		return fmt.Errorf("%q is not a number in [0, 1]", v)
	}
	return nil
}

// checkTopicConfig applies Kafka's rules to a topic config set to value; a
// nil value (the default) needs only a known name.
func checkTopicConfig(name string, value *string) error {
	rule, ok := topicConfigs[name]
	if !ok {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if value == nil {
		return nil
	}
	if err := rule(*value); err != nil {
		return fmt.Errorf("topic config %s: %w", name, err)
	}
	return nil
}

// checkAlteredTopicConfig applies checkTopicConfig to one config of an
// IncrementalAlterConfigs request: a value set or appended is checked, a
// config deleted or subtracted needs only a known name.
func checkAlteredTopicConfig(c kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	switch c.Op {
	case kmsg.IncrementalAlterConfigOpSet, kmsg.IncrementalAlterConfigOpAppend:
		return checkTopicConfig(c.Name, c.Value)
	default:
		return checkTopicConfig(c.Name, nil)
	}
}
