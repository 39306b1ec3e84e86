package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
)

// startBroker starts a broker that the test closes when it ends.
func startBroker(t *testing.T, opts ...Opt) *Broker {
	t.Helper()
	b, err := Start(t.Context(), opts...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// newClient returns a kgo client of b that the test closes when it ends.
func newClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates topic on b with the given partitions and configs.
func createTopic(t *testing.T, b *Broker, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, b))
	if _, err := adm.CreateTopic(t.Context(), partitions, 1, configs, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// consumeAll reads topic from the start until it has want records, or fails
// the test after a timeout.
func consumeAll(t *testing.T, b *Broker, topic string, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, b, append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %s: got %d of %d records: %v", topic, len(got), want, err)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("consume %s: %v", topic, err)
		}
		got = append(got, fs.Records()...)
	}
	return got
}

type position struct {
	partition int32
	offset    int64
}

func TestBrokerKeepsRecordsAcrossRestart(t *testing.T) {
	const (
		topic   = "events"
		group   = "counter"
		records = 10_000
	)
	dir := t.TempDir()

	b, err := Start(t.Context(), DataDir(dir))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := b.DataDir(); got != dir {
		t.Errorf("DataDir() = %q, want %q", got, dir)
	}
	createTopic(t, b, topic, 3, nil)

	producer, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		written = make(map[string]position, records) // by key
		wg      sync.WaitGroup
	)
	for i := range records {
		wg.Add(1)
		r := &kgo.Record{Key: fmt.Appendf(nil, "key-%05d", i), Value: fmt.Appendf(nil, "value-%05d", i)}
		producer.Produce(t.Context(), r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("produce %s: %v", r.Key, err)
				return
			}
			mu.Lock()
			written[string(r.Key)] = position{r.Partition, r.Offset}
			mu.Unlock()
		})
	}
	wg.Wait()
	producer.Close()
	if t.Failed() {
		t.FailNow()
	}

	admCl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	committed := kadm.Offsets{}
	for p := range int32(3) {
		committed.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(100 * (p + 1)), LeaderEpoch: -1, Metadata: "m"})
	}
	resp, err := kadm.NewClient(admCl).CommitOffsets(t.Context(), group, committed)
	if err == nil {
		err = resp.Error()
	}
	admCl.Close()
	if err != nil {
		t.Fatalf("commit offsets: %v", err)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	b = startBroker(t, DataDir(dir))
	got := consumeAll(t, b, topic, records)
	if len(got) != records {
		t.Fatalf("consumed %d records after restart, want %d", len(got), records)
	}
	for _, r := range got {
		key := string(r.Key)
		pos, ok := written[key]
		if !ok {
			t.Fatalf("record %s at %d/%d was never produced", key, r.Partition, r.Offset)
		}
		delete(written, key)
		if want := "value-" + strings.TrimPrefix(key, "key-"); string(r.Value) != want {
			t.Errorf("record %s has value %q, want %q", key, r.Value, want)
		}
		if (position{r.Partition, r.Offset}) != pos {
			t.Errorf("record %s at %d/%d after restart, was at %d/%d", key, r.Partition, r.Offset, pos.partition, pos.offset)
		}
	}
	if len(written) != 0 {
		t.Errorf("%d records lost across restart", len(written))
	}

	fetched, err := kadm.NewClient(newClient(t, b)).FetchOffsets(t.Context(), group)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	for _, want := range committed.Sorted() {
		o, ok := fetched.Lookup(topic, want.Partition)
		if !ok || o.At != want.At || o.Metadata != want.Metadata {
			t.Errorf("committed offset of %s/%d after restart = %+v (found %v), want %d %q", topic, want.Partition, o.Offset, ok, want.At, want.Metadata)
		}
	}
}

func TestBrokerCommitsTransactions(t *testing.T) {
	const topic = "ledger"
	b := startBroker(t)
	createTopic(t, b, topic, 1, nil)

	producer := newClient(t, b, kgo.TransactionalID("ledger-writer"), kgo.DefaultProduceTopic(topic))
	transact := func(commit kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatalf("begin transaction: %v", err)
		}
		for _, v := range values {
			if err := producer.ProduceSync(t.Context(), kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
		if err := producer.EndTransaction(t.Context(), commit); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	transact(kgo.TryCommit, "a1", "a2", "a3")
	transact(kgo.TryAbort, "x1", "x2")
	transact(kgo.TryCommit, "b1", "b2")

	got := consumeAll(t, b, topic, 5, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	if want := "a1 a2 a3 b1 b2"; strings.Join(values, " ") != want {
		t.Errorf("read_committed consumer saw %q, want %q", values, want)
	}
}

func TestBrokerReportsAddressInUse(t *testing.T) {
	first := startBroker(t)
	addr := first.Addrs()[0]

	b, err := Start(t.Context(), Addr(addr))
	if err == nil {
		b.Close()
		t.Fatalf("second broker on %s started", addr)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address %s", err, addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q is not EADDRINUSE", err)
	}
}

func TestBrokerRefusesDataDirOfRunningBroker(t *testing.T) {
	dir := t.TempDir()
	startBroker(t, DataDir(dir))

	b, err := Start(t.Context(), DataDir(dir))
	if err == nil {
		b.Close()
		t.Fatal("second broker on the same data dir started")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the data dir %s", err, dir)
	}
	if !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("error %q is not ErrDataDirInUse", err)
	}
}

func TestBrokerListensOnLoopbackByDefault(t *testing.T) {
	for _, addr := range []string{"", ":0"} {
		var opts []Opt
		if addr != "" {
			opts = append(opts, Addr(addr))
		}
		b := startBroker(t, opts...)
		if got := b.Addrs(); len(got) != 1 || !strings.HasPrefix(got[0], "127.0.0.1:") {
			t.Errorf("Addr(%q): Addrs() = %q, want one address on 127.0.0.1", addr, got)
		}
		if got := b.DataDir(); got != "" {
			t.Errorf("DataDir() = %q without a data dir, want empty", got)
		}
	}
}

// TestBrokerAdvertisesReachableAddress checks that a broker bound to all
// interfaces does not send clients to 0.0.0.0, and that AdvertisedHost is
// what clients are sent to.
func TestBrokerAdvertisesReachableAddress(t *testing.T) {
	for _, tc := range []struct {
		opts []Opt
		host string
	}{
		{[]Opt{Addr("0.0.0.0:0")}, "127.0.0.1"},
		{[]Opt{AdvertisedHost("localhost")}, "localhost"},
	} {
		b := startBroker(t, tc.opts...)
		if got := b.Addrs()[0]; !strings.HasPrefix(got, tc.host+":") {
			t.Errorf("Addrs() = %q, want host %s", b.Addrs(), tc.host)
		}
		meta, err := kadm.NewClient(newClient(t, b)).BrokerMetadata(t.Context())
		if err != nil {
			t.Fatalf("metadata: %v", err)
		}
		if len(meta.Brokers) != 1 || meta.Brokers[0].Host != tc.host {
			t.Errorf("metadata advertises %+v, want host %s", meta.Brokers, tc.host)
		}
		createTopic(t, b, "t", 1, nil)
		cl := newClient(t, b, kgo.DefaultProduceTopic("t"))
		if err := cl.ProduceSync(t.Context(), kgo.StringRecord("v")).FirstErr(); err != nil {
			t.Errorf("produce through advertised address: %v", err)
		}
	}
}

func TestBrokerCreatesTopicsOnlyWhenAllowed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		opts := []Opt{Partitions(4)}
		if allow {
			opts = append(opts, AllowAutoTopicCreation())
		}
		b := startBroker(t, opts...)
		cl := newClient(t, b, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("auto"), kgo.RecordDeliveryTimeout(time.Second))
		err := cl.ProduceSync(t.Context(), kgo.StringRecord("v")).FirstErr()
		if allow != (err == nil) {
			t.Errorf("auto-creation allowed %v: produce to a new topic returned %v", allow, err)
		}
		if !allow {
			continue
		}
		topics, err := kadm.NewClient(cl).ListTopics(t.Context(), "auto")
		if err != nil {
			t.Fatalf("list topics: %v", err)
		}
		if got := len(topics["auto"].Partitions); got != 4 {
			t.Errorf("auto-created topic has %d partitions, want 4", got)
		}
	}
}

// TestBrokerRebalancesGroupQuickly checks that a consumer group with short
// session and heartbeat timeouts shares its partitions with a member that
// joins, in far less time than Kafka's default minimum session timeout.
func TestBrokerRebalancesGroupQuickly(t *testing.T) {
	const topic = "clicks"
	b := startBroker(t)
	createTopic(t, b, topic, 4, nil)

	assigned := make(chan string, 16)
	member := func(name string) *kgo.Client {
		return newClient(t, b,
			kgo.ConsumerGroup("quick"),
			kgo.ConsumeTopics(topic),
			kgo.SessionTimeout(500*time.Millisecond),
			kgo.HeartbeatInterval(50*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, added map[string][]int32) {
				if len(added[topic]) > 0 { // kgo also calls this when nothing was added
					assigned <- name
				}
			}),
		)
	}
	poll := func(ctx context.Context, cl *kgo.Client) {
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	deadline := time.After(5 * time.Second)
	go poll(ctx, member("first"))
	select {
	case <-assigned:
	case <-deadline:
		t.Fatal("first member got no partitions")
	}
	start := time.Now()
	go poll(ctx, member("second"))
	for {
		select {
		case name := <-assigned:
			if name == "second" {
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("rebalance with a new member took %v", d)
				}
				return
			}
		case <-deadline:
			t.Fatal("second member got no partitions")
		}
	}
}

func TestBrokerRefusesTopicNamesKafkaRefuses(t *testing.T) {
	dir := t.TempDir()
	b, err := Start(t.Context(), DataDir(dir))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	adm := kadm.NewClient(newClient(t, b))
	for _, name := range []string{"", ".", "..", "bad name", "a/b", "a:b", strings.Repeat("x", 250), strings.Repeat("x", 300)} {
		resp, err := adm.CreateTopic(t.Context(), 1, 1, nil, name)
		if err == nil {
			err = resp.Err
		}
		if !errors.Is(err, kerr.InvalidTopicException) || !strings.Contains(resp.ErrMessage, "topic name") {
			t.Errorf("create %q: %v (%q), want INVALID_TOPIC_EXCEPTION naming the rule", name, err, resp.ErrMessage)
		}
	}
	resps, err := adm.CreateTopics(t.Context(), 1, 1, nil, "good", "bad!")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resps["bad!"].Err, kerr.InvalidTopicException) || resps["good"].Err == nil {
		t.Errorf("a good and a bad name in one request: %v, %v; want neither created", resps["good"].Err, resps["bad!"].Err)
	}
	longest := strings.Repeat("a.b_c-", kafka.MaxTopicName/6) + "xyz"
	for _, name := range []string{"orders", "orders-table", "a.b_c-D9", longest} {
		if _, err := adm.CreateTopic(t.Context(), 1, 1, nil, name); err != nil {
			t.Errorf("create %q: %v", name, err)
		}
	}
	topics, err := adm.ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := topics.Names(); len(got) != 4 {
		t.Errorf("topics %q, want the 4 good ones", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The data dir loads again: the longest name Kafka allows fits a file
	// name.
	b2, err := Start(t.Context(), DataDir(dir))
	if err != nil {
		t.Fatalf("restart on the data dir: %v", err)
	}
	_ = b2.Close()
}
