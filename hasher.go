package sluice

import "github.com/sluice-io/sluice/internal/kafka"

// A Hasher places a key on one of a topic's partitions. sluice uses one
// Hasher for everything keyed: the partitions its processors, loopbacks and
// emitters write keys to, the partition a View or Lookup reads a key's row
// from, and the check that an input record is on its key's partition. It must
// be the placement of every producer of the group's inputs and of the tables
// it reads; otherwise a key's row is in a partition where Get does not look.
//
// Records with a nil or empty key are not placed by key: producers put them
// anywhere (librdkafka's defaults and franz-go at random), so they are never
// reported as misplaced, and their rows are all under the key "" in whatever
// partition they came from.
//
// The zero Hasher is Murmur2.
type Hasher struct {
	name string
	fn   kafka.KeyHasher
}

var (
	// Murmur2 is Kafka's default placement, toPositive(murmur2(key)) % n:
	// the Java client's, Kafka Streams', franz-go's and librdkafka's
	// murmur2 and murmur2_random partitioners. It is sluice's default.
	Murmur2 = Hasher{name: "murmur2", fn: kafka.Murmur2}
	// CRC32 is librdkafka's consistent partitioner, crc32(key) % n with
	// the IEEE polynomial and unsigned arithmetic, which is also the keyed
	// placement of librdkafka's default partitioner, consistent_random
	// (and so of kcat, confluent-kafka-python, -go and -dotnet unless they
	// set partitioner=murmur2_random).
	CRC32 = Hasher{name: "crc32", fn: kafka.CRC32}
	// FNV1a is Sarama's default hash partitioner, which goka's emitters,
	// processors and views use too: the 32-bit FNV-1a hash taken as a
	// signed integer, modulo n, negated when negative (goka negates before
	// the modulo, which gives the same partition for every hash but
	// 0x80000000, one goka cannot place).
	FNV1a = Hasher{name: "fnv1a", fn: kafka.FNV1a}
)

// String names the hasher: murmur2, crc32 or fnv1a.
func (h Hasher) String() string { return h.orDefault().name }

// Partition returns the partition h places key on in a topic of n
// partitions. n must be positive.
func (h Hasher) Partition(key string, n int32) int32 {
	return h.orDefault().fn.Partition([]byte(key), int(n))
}

func (h Hasher) orDefault() Hasher {
	if h.fn == nil {
		return Murmur2
	}
	return h
}

// Partitioning sets the Hasher a processor, view or emitter places keys
// with. Give every object that shares topics the same one: the processors of
// a group, the views of its table, the emitters of its inputs. Default:
// Murmur2.
func Partitioning(h Hasher) Opt {
	return clientOpt(func(c *clientConfig) { c.hasher = h.orDefault() })
}
