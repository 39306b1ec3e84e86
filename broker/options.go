package broker

import (
	"log/slog"
	"time"
)

// Opt configures a broker started with Start.
type Opt interface {
	apply(*config)
}

type opt func(*config)

func (o opt) apply(c *config) { o(c) }

// config is what the options set; defaults returns its starting values.
type config struct {
	addr               string
	advertisedHost     string
	dataDir            string
	partitions         int
	autoCreateTopics   bool
	compactionInterval time.Duration
	logger             *slog.Logger
}

func defaults() config {
	return config{
		addr:               "127.0.0.1:0",
		partitions:         10,
		compactionInterval: time.Minute,
		logger:             slog.New(slog.DiscardHandler),
	}
}

// Addr sets the host and port the broker listens on, overriding the default
// "127.0.0.1:0": a free port on the loopback interface, so that nothing
// outside this machine can reach the broker unless asked to. Port 0 picks a
// free port; Broker.Addrs reports the one chosen.
//
// Unlike net.Listen, an empty host (":9092") also means loopback. To accept
// connections from other machines, name the interface or all of them
// explicitly ("0.0.0.0:9092", "[::]:9092") and, for the latter, set
// AdvertisedHost to a name the clients can resolve.
func Addr(hostport string) Opt {
	return opt(func(c *config) { c.addr = hostport })
}

// AdvertisedHost sets the host the broker tells clients to connect to in its
// metadata and coordinator responses, overriding the default: the IP address
// the broker is bound to, or 127.0.0.1 when it is bound to all interfaces
// (0.0.0.0 or ::), which only clients on this machine can reach. The port
// advertised is always the one the broker listens on.
//
// Kafka clients use the address given at bootstrap only to fetch metadata and
// then connect to the advertised address, so a client on another machine needs
// this set to a name or address of this machine that it can reach.
func AdvertisedHost(host string) Opt {
	return opt(func(c *config) { c.advertisedHost = host })
}

// DataDir makes the broker keep its topics, records, consumer group offsets,
// producer IDs and transactions in dir and load them from there when it
// starts, overriding the default of keeping everything in memory and losing it
// on Close. The directory is created if needed, with permissions 0700, and is
// locked for as long as the broker runs: a second broker on the same
// directory fails to start. A relative dir is taken relative to the working
// directory at Start.
//
// Records are written to the operating system as they are acknowledged, so
// they survive the process crashing; they are flushed to stable storage on
// Close, not on every write, the same trade-off as Kafka's defaults.
func DataDir(dir string) Opt {
	return opt(func(c *config) { c.dataDir = dir })
}

// Partitions sets how many partitions a topic gets when it is created
// without a partition count: by auto-creation (see AllowAutoTopicCreation)
// or by a CreateTopics request that asks for the default (-1), from 1 to
// MaxPartitions. The default is 10.
func Partitions(n int) Opt {
	return opt(func(c *config) { c.partitions = n })
}

// AllowAutoTopicCreation makes the broker create a topic when a client asks
// for the metadata of a topic that does not exist and allows its creation,
// as kgo.AllowAutoTopicCreation and librdkafka producers do, with the number
// of partitions set by Partitions. By default topics are not auto-created and
// such clients see UNKNOWN_TOPIC_OR_PARTITION, which catches misspelt topic
// names.
func AllowAutoTopicCreation() Opt {
	return opt(func(c *config) { c.autoCreateTopics = true })
}

// CompactionInterval sets how often the broker compacts the topics whose
// cleanup.policy contains "compact", overriding the default of one minute; a
// non-positive interval keeps the default. A compaction keeps, per key, the
// latest record of every batch but the newest of each partition, and drops
// tombstones older than the topic's delete.retention.ms (default one day). It
// also applies retention.ms and retention.bytes to the topics that set them.
// When a transaction is open at the time, the broker postpones the compaction
// until none is, checking every 100 ms. A compaction runs inside the broker's
// request loop, so it delays requests for as long as it takes to read and
// rewrite the compacted partitions.
func CompactionInterval(d time.Duration) Opt {
	return opt(func(c *config) { c.compactionInterval = d })
}

// Logger sets where the broker logs, overriding the default of discarding
// everything. Errors and warnings of the underlying kfake cluster are logged
// at their own levels; its informational and debug messages (group members
// joining and leaving, state saved and restored) at slog.LevelDebug. Every
// record has the attribute component=kfake. A nil logger keeps the default.
func Logger(l *slog.Logger) Opt {
	return opt(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}
