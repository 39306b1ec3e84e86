package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// topicConfig returns the value of config name of topic as the broker
// describes it, and whether the topic sets it.
func topicConfig(t *testing.T, adm *kadm.Client, topic, name string) (string, bool) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err == nil {
		_, err = rcs.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("describe %s: %v", topic, err)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == name && c.Value != nil && c.Source == 1 { // DYNAMIC_TOPIC_CONFIG
			return *c.Value, true
		}
	}
	return "", false
}

func TestBrokerRefusesTopicConfigsKafkaRefuses(t *testing.T) {
	b, err := Start(t.Context())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	adm := kadm.NewClient(newClient(t, b))

	bad := []struct{ name, value string }{
		{"cleanup.policy", "compacted"},
		{"cleanup.policy", "compact,deleted"},
		{"retention.msec", "1000"},
		{"confluent.value.schema.validation", "true"},
		{"retention.ms", "a week"},
		{"retention.ms", "-2"},
		{"min.insync.replicas", "0"},
		{"segment.bytes", "1e6"},
		{"compression.type", "brotli"},
		{"message.timestamp.type", "createtime"},
		{"min.cleanable.dirty.ratio", "1.5"},
		{"unclean.leader.election.enable", "yes"},
	}
	for _, c := range bad {
		resp, err := adm.CreateTopic(t.Context(), 1, 1, map[string]*string{c.name: &c.value}, "t")
		if err == nil {
			err = resp.Err
		}
		if !errors.Is(err, kerr.InvalidConfig) || !strings.Contains(resp.ErrMessage, c.name) {
			t.Errorf("create with %s=%s: %v (%q), want INVALID_CONFIG naming the config", c.name, c.value, err, resp.ErrMessage)
		}
	}
	// A config named without a value asks for the default: the name must
	// still be one of Kafka's.
	if resp, _ := adm.CreateTopic(t.Context(), 1, 1, map[string]*string{"retention.msec": nil}, "t"); !errors.Is(resp.Err, kerr.InvalidConfig) {
		t.Errorf("create with retention.msec unset: %v, want INVALID_CONFIG", resp.Err)
	}
	good := map[string]string{
		"cleanup.policy":                 "compact,delete",
		"retention.ms":                   "-1",
		"min.insync.replicas":            "2",
		"segment.bytes":                  "1048576",
		"compression.type":               "zstd",
		"message.timestamp.type":         "LogAppendTime",
		"min.cleanable.dirty.ratio":      "0.1",
		"unclean.leader.election.enable": "FALSE",
	}
	configs := make(map[string]*string)
	for k, v := range good {
		configs[k] = &v
	}
	if resp, err := adm.CreateTopic(t.Context(), 1, 1, configs, "t"); err != nil || resp.Err != nil {
		t.Fatalf("create with good configs: %v, %v", err, resp.Err)
	}
	for k, v := range good {
		if got, ok := topicConfig(t, adm, "t", k); got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	topics, err := adm.ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := topics.Names(); len(got) != 1 {
		t.Errorf("topics %q, want only the one created with good configs", got)
	}
}

func TestBrokerRefusesTopicConfigChangesKafkaRefuses(t *testing.T) {
	b, err := Start(t.Context())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	adm := kadm.NewClient(newClient(t, b))
	for _, topic := range []string{"a", "b"} {
		if resp, err := adm.CreateTopic(t.Context(), 1, 1, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v, %v", topic, err, resp.Err)
		}
	}
	set := func(name, value string) []kadm.AlterConfig {
		return []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: &value}}
	}
	type alter func([]kadm.AlterConfig, ...string) (kadm.AlterConfigsResponses, error)
	for name, fn := range map[string]alter{
		"incremental": func(c []kadm.AlterConfig, ts ...string) (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(t.Context(), c, ts...)
		},
		"whole state": func(c []kadm.AlterConfig, ts ...string) (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigsState(t.Context(), c, ts...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			resps, err := fn(set("cleanup.policy", "compacted"), "a")
			if err != nil {
				t.Fatal(err)
			}
			if r := resps[0]; !errors.Is(r.Err, kerr.InvalidConfig) || !strings.Contains(r.ErrMessage, "cleanup.policy") {
				t.Errorf("set cleanup.policy=compacted: %v (%q), want INVALID_CONFIG naming the config", r.Err, r.ErrMessage)
			}
			if v, ok := topicConfig(t, adm, "a", "cleanup.policy"); ok {
				t.Errorf("a refused change set cleanup.policy=%s", v)
			}
			resps, err = fn(set("retention.ms", "3600000"), "a", "b")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resps {
				if r.Err != nil {
					t.Errorf("set retention.ms on %s: %v", r.Name, r.Err)
				}
				if v, _ := topicConfig(t, adm, r.Name, "retention.ms"); v != "3600000" {
					t.Errorf("%s: retention.ms = %q, want 3600000", r.Name, v)
				}
			}
		})
	}
	// Deleting a config needs only a name Kafka knows.
	resps, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "retention.ms"}}, "a")
	if err == nil {
		err = resps[0].Err
	}
	if err != nil {
		t.Errorf("delete retention.ms: %v", err)
	}
	resps, err = adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "retention.msec"}}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resps[0].Err, kerr.InvalidConfig) {
		t.Errorf("delete retention.msec: %v, want INVALID_CONFIG", resps[0].Err)
	}
}
