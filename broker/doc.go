// Package broker runs an embedded, single-node Kafka-protocol broker inside a
// Go process, so that sluice programs, their tests and any Kafka tool (kcat,
// librdkafka, the Java client) can run on one machine without a Kafka
// cluster. It wraps kfake, franz-go's Kafka broker written in Go, and adds
// what a broker that outlives a test needs: a locked data directory, a
// loopback-only default address, periodic compaction, slog logging and a
// Close that reports failures.
//
// Start one broker in memory, for a test:
//
//	b, err := broker.Start(ctx)
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//	client, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
//
// Or one that keeps its data between runs, as the sluice CLI does:
//
//	dir, err := broker.DefaultDataDir()
//	if err != nil {
//		return err
//	}
//	b, err := broker.Start(ctx, broker.DataDir(dir), broker.Addr("127.0.0.1:9092"))
//
// # Guarantees
//
// The broker speaks the Kafka wire protocol: produce and fetch, topics and
// partitions with configs, consumer groups (classic and KIP-848) with
// committed offsets, idempotent and transactional producers with
// read_committed consumers, and the admin requests (create, delete and
// describe topics and groups, configs, offsets). Without DataDir it keeps
// everything in memory and forgets it on Close. With DataDir, every record and
// offset commit it acknowledged is in the directory after Close and is served
// again by the next broker started on it, with the same partitions and
// offsets; a record acknowledged before the process crashed survives too,
// unless the operating system crashed before writing it out.
//
// Topics whose cleanup.policy contains "compact" are compacted periodically
// (see CompactionInterval), so tables restore from a changelog of about one
// record per key. Compaction waits for a moment when no transaction is open,
// so that it does not drop a committed record in favour of one whose
// transaction then aborts.
//
// It listens on 127.0.0.1 unless told otherwise with Addr, and advertises an
// address clients can connect to (see AdvertisedHost).
//
// # Settings
//
// Where the defaults of kfake or Kafka do not suit developing stream
// processors, the broker differs from them:
//
//   - group.min.session.timeout.ms is 100 ms instead of 6 s, so that tests may
//     use short session timeouts and heartbeat intervals and see a consumer
//     group rebalance in well under a second. Clients still choose their
//     session timeout; kgo's default is 45 s.
//
//   - group.consumer.heartbeat.interval.ms, the heartbeat interval the broker
//     gives KIP-848 consumer group members, is 500 ms instead of 5 s, because
//     a member learns of its new assignment only on a heartbeat.
//
//   - log.retention.ms is -1 instead of 7 days: records are kept until
//     deleted, unless their topic sets retention.ms or retention.bytes. kfake
//     applies time retention to compacted topics too, where Kafka does not,
//     and would delete every table row whose timestamp is more than a week
//     old, even the newest.
//
//   - Compaction runs every CompactionInterval, one minute by default, driven
//     by this package; kfake's own log.cleaner.backoff.ms is set to a century
//     so that its ticker, which compacts regardless of open transactions and
//     does not run after a restart, never fires. The broker compacts only
//     when no transaction is open, and holds the requests that would begin
//     one (AddPartitionsToTxn, a transactional Produce) from that check
//     until the compaction ends, a few milliseconds.
//
//   - The rebalance timeout of a classic group member, as the broker sees it,
//     is at most half the member's session timeout. kfake expires a member
//     whose JoinGroup waits longer than its session timeout (Kafka allows it
//     the rebalance timeout), and a member that died while joining stays in
//     the group until a join phase ends; with a rebalance timeout above the
//     session timeout (kgo's default is 60 s) the live members expired and
//     joined again over and over, and the group never settled. The join
//     phase now ends before they expire, without the dead member. Clients
//     still wait as long as they asked to.
//
//   - A broker started on a data dir forgets the members of classic consumer
//     groups that the previous broker had (kfake would restore them, and its
//     handling of restored members can leave a JoinGroup unanswered or a dead
//     member holding partitions). Committed offsets are kept; each live
//     member is told at its next heartbeat that its member ID is unknown, and
//     joins again, as clients do when a Kafka group coordinator moves.
//     Open transactions are kept and ended as before.
//
//   - Topic names and topic configs are held to Kafka's rules, which kfake
//     does not apply: a CreateTopics request that names a topic Kafka would
//     refuse, or sets a config that is not one of Kafka's topic configs or
//     a value Kafka would refuse (cleanup.policy=compacted, retention.ms=1w),
//     is answered INVALID_TOPIC_EXCEPTION or INVALID_CONFIG with the reason,
//     and so is an AlterConfigs or IncrementalAlterConfigs request that
//     sets such a config. Unlike Kafka, such a request is all or nothing:
//     its other topics are not created or altered either (INVALID_REQUEST).
//
// Like kfake, and unlike Kafka, there is no delay before the first rebalance
// of a group (group.initial.rebalance.delay.ms).
//
// # Limits
//
// It is one node: there is no replication, the data dir is the only copy of
// the data, and creating a topic with a replication factor above one fails
// with INVALID_REPLICATION_FACTOR (ask for -1, the default, or 1). A topic
// has at most MaxPartitions partitions: creating or growing one beyond that
// fails with INVALID_PARTITIONS. It does
// not throttle clients or enforce quotas. Compaction rewrites whole
// partitions inside the broker's request loop, so a large compacted topic
// delays requests while it runs. It is built for development and tests on
// one machine, not for production data.
package broker
