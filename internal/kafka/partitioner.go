package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// Partitioner places every record sluice produces. A record whose Partition
// is zero or more goes to that partition (changelogs follow their task's
// partition); a record with Partition -1 is placed by its key with Kafka's
// murmur2 partitioner, the one the Java client and librdkafka's murmur2
// partitioner use, so that keys land where other producers put them.
func Partitioner() kgo.Partitioner { return partitioner{keyed: kgo.StickyKeyPartitioner(nil)} }

// KeyPartition returns the partition murmur2 places key on among n.
// A nil key is hashed as an empty one.
func KeyPartition(key []byte, n int) int32 {
	if key == nil {
		key = []byte{}
	}
	return int32(murmur.Partition(&kgo.Record{Key: key}, n))
}

// murmur only ever sees non-nil keys, for which it is stateless and so safe
// for concurrent use.
var murmur = kgo.StickyKeyPartitioner(nil).ForTopic("")

type partitioner struct{ keyed kgo.Partitioner }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &topicPartitioner{keyed: p.keyed.ForTopic(topic)}
}

type topicPartitioner struct{ keyed kgo.TopicPartitioner }

func (t *topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || t.keyed.RequiresConsistency(r)
}

func (t *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return t.keyed.Partition(r, n)
}

func (t *topicPartitioner) OnNewBatch() {
	if nb, ok := t.keyed.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
