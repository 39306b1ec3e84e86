package kafka

import (
	"context"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// javaMurmur2 are the vectors of Kafka's own UtilsTest.testMurmur2: the
// signed 32-bit result of org.apache.kafka.common.utils.Utils.murmur2 for
// the UTF-8 bytes of each string.
var javaMurmur2 = map[string]int32{
	"21":                         -973932308,
	"foobar":                     -790332482,
	"a-little-bit-long-string":   -985981536,
	"a-little-bit-longer-string": -1486304829,
	"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	"abc": 479470107,
}

// javaPartition is the partition Kafka's Java producer chooses for a key
// whose murmur2 hash is h: Utils.toPositive(h) % n.
func javaPartition(h int32, n int) int32 {
	return int32(int(h&0x7fffffff) % n)
}

func TestKeyPartitionMatchesJavaMurmur2Vectors(t *testing.T) {
	// The largest n makes the partition almost the whole positive hash, so
	// that a hash differing in any but the top bit is caught.
	counts := []int{1, 2, 3, 6, 7, 10, 16, 100, 1000, 65537, math.MaxInt32}
	for key, h := range javaMurmur2 {
		for _, n := range counts {
			want := javaPartition(h, n)
			if got := KeyPartition([]byte(key), n); got != want {
				t.Errorf("KeyPartition(%q, %d) = %d, want %d (murmur2 %d)", key, n, got, want, h)
			}
		}
	}
}

func TestMurmur2MatchesFranzGo(t *testing.T) {
	// franz-go's StickyKeyPartitioner with its own hasher: what a plain
	// franz-go producer places keys with.
	franz := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	rng := rand.New(rand.NewPCG(1, 2))
	counts := []int{1, 3, 10, 64, 1000, math.MaxInt32}
	for i := range 20000 {
		key := make([]byte, i%67) // every length mod 4, up to 66 bytes
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		for _, n := range counts {
			want := int32(franz.Partition(&kgo.Record{Key: key}, n))
			if got := Murmur2(key, n); got != want {
				t.Fatalf("Murmur2(%x, %d) = %d, franz-go places it on %d", key, n, got, want)
			}
		}
	}
}

func BenchmarkMurmur2(b *testing.B) {
	key := []byte("user-0001234")
	b.ReportAllocs()
	for b.Loop() {
		Murmur2(key, 10)
	}
}

func TestKeyPartitionHashesNilKeyAsEmptyKey(t *testing.T) {
	for _, n := range []int{1, 6, 10, math.MaxInt32} {
		if got, want := KeyPartition(nil, n), KeyPartition([]byte{}, n); got != want {
			t.Errorf("KeyPartition(nil, %d) = %d, want %d as for an empty key", n, got, want)
		}
	}
}

func TestPartitionerKeepsExplicitPartitionAndPlacesOthersByMurmur2(t *testing.T) {
	const n = 6
	tp := Partitioner(Murmur2).ForTopic("orders")
	for key := range javaMurmur2 {
		for p := int32(0); p < n; p++ {
			r := &kgo.Record{Topic: "orders", Key: []byte(key), Partition: p}
			if !tp.RequiresConsistency(r) {
				t.Errorf("record for partition %d does not require consistency: the client may move it", p)
			}
			if got := tp.Partition(r, n); got != int(p) {
				t.Errorf("record with Partition %d and key %q placed on %d", p, key, got)
			}
		}
		r := &kgo.Record{Topic: "orders", Key: []byte(key), Partition: -1}
		if !tp.RequiresConsistency(r) {
			t.Errorf("keyed record %q does not require consistency: the client may move it", key)
		}
		if got, want := tp.Partition(r, n), javaPartition(javaMurmur2[key], n); got != int(want) {
			t.Errorf("record with Partition -1 and key %q placed on %d, want murmur2's %d", key, got, want)
		}
	}
}

// TestPartitionerPlacesProducedRecordsThroughClient produces through a real
// client and broker, because the client, not the partitioner, decides which
// partitions a partitioner may pick from.
func TestPartitionerPlacesProducedRecordsThroughClient(t *testing.T) {
	const (
		topic = "placed"
		n     = 6
	)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(n, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(Partitioner(Murmur2)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var records []*kgo.Record
	want := make(map[*kgo.Record]int32)
	for key, h := range javaMurmur2 {
		r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte("by-key"), Partition: -1}
		records = append(records, r)
		want[r] = javaPartition(h, n)
		for p := int32(0); p < n; p++ {
			r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprint("to-", p)), Partition: p}
			records = append(records, r)
			want[r] = p
		}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if r.Partition != want[r] {
			t.Errorf("record %q=%q landed on partition %d, want %d", r.Key, r.Value, r.Partition, want[r])
		}
	}
}

// hasherKeys are keys whose hashes, under every hasher, cover both halves of
// the 32-bit range, so that signed and unsigned arithmetic differ on some.
func hasherKeys() [][]byte {
	keys := [][]byte{{}, []byte("a"), []byte("\xff\xfe")}
	for key := range javaMurmur2 {
		keys = append(keys, []byte(key))
	}
	for i := range 200 {
		keys = append(keys, fmt.Appendf(nil, "key-%d", i))
	}
	return keys
}

// gokaPartition is how goka's views and processors find a key's partition
// with their default hasher: the absolute value of the signed FNV-1a hash,
// then the modulo (Sarama takes the modulo first; the two agree for every
// hash but 0x80000000, whose absolute value overflows).
func gokaPartition(key []byte, n int) int32 {
	h := int32(fnv32a(key))
	if h < 0 {
		h = -h
	}
	return h % int32(n)
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// TestHashersMatchFranzGosPartitionersOfTheSameProducers compares each
// hasher with the franz-go partitioner documented to match the same
// producers: SaramaCompatHasher(fnv-1a) for Sarama's default, and
// SaramaHasher(crc32) for librdkafka's consistent partitioner (exact on 64-bit
// platforms only, which is why CRC32 does its own unsigned arithmetic).
func TestHashersMatchFranzGosPartitionersOfTheSameProducers(t *testing.T) {
	highBit := map[string]bool{}
	for _, key := range hasherKeys() {
		if fnv32a(key)>>31 == 1 {
			highBit["fnv1a"] = true
		}
		if crc32.ChecksumIEEE(key)>>31 == 1 {
			highBit["crc32"] = true
		}
		for _, n := range []int{1, 2, 3, 6, 7, 10, 100, 1000, math.MaxInt32} {
			if got, want := FNV1a(key, n), int32(kgo.SaramaCompatHasher(fnv32a)(key, n)); got != want {
				t.Errorf("FNV1a(%q, %d) = %d, franz-go's SaramaCompatHasher says %d", key, n, got, want)
			}
			if got, want := FNV1a(key, n), gokaPartition(key, n); got != want {
				t.Errorf("FNV1a(%q, %d) = %d, goka's views say %d", key, n, got, want)
			}
			if math.MaxInt > math.MaxInt32 {
				if got, want := CRC32(key, n), int32(kgo.SaramaHasher(crc32.ChecksumIEEE)(key, n)); got != want {
					t.Errorf("CRC32(%q, %d) = %d, franz-go's SaramaHasher(crc32) says %d", key, n, got, want)
				}
			}
			if got := CRC32(key, n); got < 0 || int(got) >= n {
				t.Errorf("CRC32(%q, %d) = %d, out of range", key, n, got)
			}
		}
	}
	if !highBit["fnv1a"] || !highBit["crc32"] {
		t.Fatalf("no key has a hash with the high bit set (%v): the sign handling is untested", highBit)
	}
}

func TestPartitionerPlacesKeysWithItsHasher(t *testing.T) {
	const n = 6
	for name, h := range map[string]KeyHasher{"crc32": CRC32, "fnv1a": FNV1a, "murmur2": Murmur2} {
		tp := Partitioner(h).ForTopic("orders")
		for _, key := range hasherKeys() {
			r := &kgo.Record{Topic: "orders", Key: key, Partition: -1}
			if !tp.RequiresConsistency(r) {
				t.Errorf("%s: keyed record %q does not require consistency", name, key)
			}
			if got, want := tp.Partition(r, n), h(key, n); got != int(want) {
				t.Errorf("%s: key %q placed on %d, want %d", name, key, got, want)
			}
			r.Partition = 4
			if got := tp.Partition(r, n); got != 4 {
				t.Errorf("%s: record for partition 4 placed on %d", name, got)
			}
		}
	}
}
