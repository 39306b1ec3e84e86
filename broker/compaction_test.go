package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readToEnd returns the records of topic from its log start offset up to its
// high watermark.
func readToEnd(t *testing.T, b *Broker, topic string) []*kgo.Record {
	t.Helper()
	ends, err := kadm.NewClient(newClient(t, b)).ListEndOffsets(t.Context(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	pending := map[int32]int64{} // partition -> offset of its last record
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset - 1
		}
	})
	if len(pending) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s to its end: %v", topic, err)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		for _, r := range fs.Records() {
			got = append(got, r)
			if last, ok := pending[r.Partition]; ok && r.Offset >= last {
				delete(pending, r.Partition)
			}
		}
	}
	return got
}

// waitForLatestValues waits until compaction has left one record per key in
// topic, the latest, in every batch but the newest. Like Kafka's active
// segment, the newest batch is never compacted, and the records it supersedes
// stay until a newer batch arrives. Every record here is a batch of its own.
func waitForLatestValues(t *testing.T, b *Broker, topic string, latest map[string]string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := readToEnd(t, b, topic)
		if compactedToLatest(got, latest) {
			return
		}
		if time.Now().After(deadline) {
			for _, r := range got {
				t.Logf("offset %d: %s=%s", r.Offset, r.Key, r.Value)
			}
			t.Fatalf("%s holds %d records after waiting for compaction, want the latest of each of %d keys", topic, len(got), len(latest))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func compactedToLatest(records []*kgo.Record, latest map[string]string) bool {
	if len(records) == 0 {
		return len(latest) == 0
	}
	newest := records[len(records)-1]
	if latest[string(newest.Key)] != string(newest.Value) {
		return false
	}
	seen := map[string]bool{string(newest.Key): true}
	for _, r := range records[:len(records)-1] {
		key := string(r.Key)
		if key != string(newest.Key) {
			if seen[key] || latest[key] != string(r.Value) {
				return false
			}
			seen[key] = true
		}
	}
	return len(seen) == len(latest) && len(records) <= len(latest)+1
}

func TestBrokerCompactsCompactedTopicsAfterRestart(t *testing.T) {
	const (
		topic = "counts-table"
		keys  = 10
	)
	dir := t.TempDir()
	latest := map[string]string{}
	produceRounds := func(b *Broker, from, to int) {
		t.Helper()
		cl := newClient(t, b, kgo.DefaultProduceTopic(topic))
		for round := from; round < to; round++ {
			for k := range keys {
				// One record per request, so that every record is a batch of
				// its own and all but the newest can be compacted.
				key, value := fmt.Sprintf("key-%d", k), fmt.Sprintf("value-%d-%d", k, round)
				r := &kgo.Record{Key: []byte(key), Value: []byte(value)}
				if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
				latest[key] = value
			}
		}
	}

	b, err := Start(t.Context(), DataDir(dir), CompactionInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	policy := "compact"
	createTopic(t, b, topic, 1, map[string]*string{"cleanup.policy": &policy})
	produceRounds(b, 0, 5)
	waitForLatestValues(t, b, topic, latest)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// kfake itself arms its compaction ticker only when topics change, not
	// when it loads them from a data dir.
	b = startBroker(t, DataDir(dir), CompactionInterval(50*time.Millisecond))
	produceRounds(b, 5, 8)
	waitForLatestValues(t, b, topic, latest)
}

// produceKeyed produces one record per call, so that each is a batch of its
// own, and fails the test if it is not acknowledged.
func produceKeyed(t *testing.T, cl *kgo.Client, key, value string, ts time.Time) {
	t.Helper()
	r := &kgo.Record{Key: []byte(key), Value: []byte(value), Timestamp: ts}
	if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatalf("produce %s=%s: %v", key, value, err)
	}
}

// waitForCompaction produces two records of a fresh key and waits until
// compaction has dropped the first, proof that a compaction ran after the
// call.
func waitForCompaction(t *testing.T, b *Broker, cl *kgo.Client, topic string) []*kgo.Record {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	produceKeyed(t, cl, marker, "old", time.Time{})
	produceKeyed(t, cl, marker, "new", time.Time{})
	produceKeyed(t, cl, "tail", marker, time.Time{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := readToEnd(t, b, topic)
		compacted := true
		for _, r := range got {
			if string(r.Key) == marker && string(r.Value) == "old" {
				compacted = false
			}
		}
		if compacted {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not compacted", topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// aliceAndATransaction starts a broker that compacts every 10ms,
// with topic compacted and alice=10 written to it, and begins a transaction
// of a client with the transactional ID id: the transaction's writes are
// the caller's.
func aliceAndATransaction(t *testing.T, topic, id string) (b *Broker, plain, txn *kgo.Client) {
	t.Helper()
	b = startBroker(t, CompactionInterval(10*time.Millisecond))
	policy := "compact"
	createTopic(t, b, topic, 1, map[string]*string{"cleanup.policy": &policy})
	plain = newClient(t, b, kgo.DefaultProduceTopic(topic))
	txn = newClient(t, b, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	produceKeyed(t, plain, "alice", "10", time.Time{})
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	return b, plain, txn
}

// valuesOf returns the values of key's records, in order.
func valuesOf(records []*kgo.Record, key string) []string {
	var values []string
	for _, r := range records {
		if string(r.Key) == key {
			values = append(values, string(r.Value))
		}
	}
	return values
}

func TestBrokerCompactionKeepsRecordsSupersededByOpenTransaction(t *testing.T) {
	const topic = "balances-table"
	b, plain, txn := aliceAndATransaction(t, topic, "balances")
	produceKeyed(t, txn, "alice", "20", time.Time{})
	produceKeyed(t, plain, "bob", "5", time.Time{}) // so the transaction's batch is not the newest
	// The compactor ran, found the transaction open and held off.
	postponed := b.postponed.Load()
	deadline := time.Now().Add(5 * time.Second)
	for b.postponed.Load() <= postponed {
		if time.Now().After(deadline) {
			t.Fatal("the compactor did not run while the transaction was open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Read uncommitted, the open transaction's record shows too.
	if alice := valuesOf(readToEnd(t, b, topic), "alice"); len(alice) != 2 || alice[0] != "10" || alice[1] != "20" {
		t.Errorf("alice's records with the transaction open: %q, want [10 20]", alice)
	}
	if err := txn.EndTransaction(t.Context(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	// Read uncommitted, an aborted record is visible until compaction
	// removes it; the committed one must be there either way.
	if alice := valuesOf(waitForCompaction(t, b, plain, topic), "alice"); len(alice) != 1 || alice[0] != "10" {
		t.Errorf("alice's records after an aborted overwrite and a compaction: %q, want [10]", alice)
	}
}

func TestBrokerKeepsOldRecordsOfCompactedTopics(t *testing.T) {
	const topic = "users-table"
	b := startBroker(t, CompactionInterval(10*time.Millisecond))
	policy := "compact"
	createTopic(t, b, topic, 1, map[string]*string{"cleanup.policy": &policy})
	cl := newClient(t, b, kgo.DefaultProduceTopic(topic))

	monthAgo := time.Now().AddDate(0, -1, 0)
	for _, user := range []string{"ann", "ben", "cat"} {
		produceKeyed(t, cl, user, "joined", monthAgo)
	}
	got := map[string]bool{}
	for _, r := range waitForCompaction(t, b, cl, topic) {
		got[string(r.Key)] = true
	}
	for _, user := range []string{"ann", "ben", "cat"} {
		if !got[user] {
			t.Errorf("row %s, written a month ago, was deleted by compaction", user)
		}
	}
}

// A transaction whose first write comes between the compactor's check for
// open transactions and its compaction waits for the compaction: the
// committed record it overwrites outlives the transaction's abort.
func TestBrokerCompactionHoldsATransactionThatBeginsWhileItChecks(t *testing.T) {
	const topic = "savings-table"
	b, plain, txn := aliceAndATransaction(t, topic, "savings")

	// Once, right after the check: alice is overwritten in the
	// transaction, and bob written after it, so that the transaction's
	// batch is not the newest.
	var (
		once    sync.Once
		wrote   = make(chan struct{}) // closed once the writes are in
		written = make(chan error, 1)
	)
	hook := func() {
		once.Do(func() {
			go func() {
				err := txn.ProduceSync(t.Context(), &kgo.Record{Key: []byte("alice"), Value: []byte("20")}).FirstErr()
				if err == nil {
					err = plain.ProduceSync(t.Context(), &kgo.Record{Key: []byte("bob"), Value: []byte("5")}).FirstErr()
				}
				close(wrote)
				written <- err
			}()
			// Until the writes are in, or held.
			for deadline := time.Now().Add(5 * time.Second); b.txnGate.held.Load() == 0 && time.Now().Before(deadline); {
				select {
				case <-wrote:
					return
				case <-time.After(time.Millisecond):
				}
			}
		})
	}
	b.beforeCompact.Store(&hook)
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the transaction's write was not taken within 10s")
	}
	if err := txn.EndTransaction(t.Context(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if alice := valuesOf(waitForCompaction(t, b, plain, topic), "alice"); len(alice) != 1 || alice[0] != "10" {
		t.Errorf("alice's records after an aborted overwrite and a compaction: %q, want [10]", alice)
	}
}
