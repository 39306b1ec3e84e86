package kafka

import (
	"encoding/binary"
	"hash/crc32"
	"hash/fnv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KeyHasher places a key among n partitions. It is stateless, so safe for
// concurrent use, and never sees a nil key: callers hash it as an empty one.
type KeyHasher func(key []byte, n int) int32

// Murmur2 is Kafka's default placement, toPositive(murmur2(key)) % n: the
// Java client's, Kafka Streams', librdkafka's murmur2 partitioners' and
// franz-go's StickyKeyPartitioner.
func Murmur2(key []byte, n int) int32 { return int32((murmur2(key) & 0x7fffffff) % uint32(n)) }

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed, as the Java client's
// Utils.murmur2 computes it. franz-go has the same function but exports it
// only behind a partitioner that takes a record, which costs a processor
// that hashes the key of every record it reads and writes three times
// the hash; TestMurmur2MatchesFranzGo holds the two together.
func murmur2(key []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(key))
	for len(key) >= 4 {
		k := binary.LittleEndian.Uint32(key)
		k *= m
		k ^= k >> r
		k *= m
		h = h*m ^ k
		key = key[4:]
	}
	switch len(key) {
	case 3:
		h ^= uint32(key[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(key[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(key[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// CRC32 is librdkafka's consistent partitioner (and the keyed half of its
// default, consistent_random): the IEEE CRC-32 of the key modulo n, unsigned.
func CRC32(key []byte, n int) int32 { return int32(crc32.ChecksumIEEE(key) % uint32(n)) }

// FNV1a is Sarama's default hash partitioner, which goka uses too: the
// 32-bit FNV-1a hash as a signed int32, modulo n, negated when negative.
func FNV1a(key []byte, n int) int32 { return int32(saramaFNV(key, n)) }

var saramaFNV = kgo.SaramaCompatHasher(func(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
})

// Partition returns the partition h places key on among n. A nil key is
// hashed as an empty one.
func (h KeyHasher) Partition(key []byte, n int) int32 {
	if key == nil {
		key = []byte{}
	}
	return h(key, n)
}

// KeyPartition returns the partition murmur2 places key on among n.
// A nil key is hashed as an empty one.
func KeyPartition(key []byte, n int) int32 { return KeyHasher(Murmur2).Partition(key, n) }

// Partitioner places every record sluice produces. A record whose Partition
// is zero or more goes to that partition (changelogs follow their task's
// partition); a record with Partition -1 is placed by its key with h, so
// that keys land where the producers of the same topics put them. A record
// with a nil key is placed by the client's sticky partitioning; sluice
// itself never produces one by key.
func Partitioner(h KeyHasher) kgo.Partitioner {
	if h == nil {
		h = Murmur2
	}
	return partitioner{keyed: kgo.StickyKeyPartitioner(func(key []byte, n int) int { return int(h(key, n)) })}
}

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
