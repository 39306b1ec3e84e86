package broker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestForgetGroupMembersKeepsTheRestOfTheSessionState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, sessionStateFile)
	in := `{"shutdownAt":"2026-01-01T00:00:00Z","classicGroups":{"g":{"leader":"m1"}},"inProgressTxns":[{"pid":7}]}`
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := forgetGroupMembers(dir); err != nil {
		t.Fatalf("forgetGroupMembers: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("rewritten state is not JSON: %v: %s", err, data)
	}
	if _, ok := got["classicGroups"]; ok {
		t.Errorf("classicGroups kept: %s", data)
	}
	if string(got["inProgressTxns"]) != `[{"pid":7}]` || string(got["shutdownAt"]) != `"2026-01-01T00:00:00Z"` {
		t.Errorf("other state changed: %s", data)
	}
	if err := forgetGroupMembers(t.TempDir()); err != nil {
		t.Errorf("no session state: %v", err)
	}
}

// A member that stays up while the broker restarts joins again and goes on
// consuming, and a member that died meanwhile holds no partitions.
func TestGroupResumesAfterBrokerRestart(t *testing.T) {
	const topic, group = "restart-events", "restart-group"
	dir := t.TempDir()
	b, err := Start(t.Context(), DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addrs()[0]
	createTopic(t, b, topic, 4, nil)

	records := make(chan *kgo.Record, 1000)
	member := func() *kgo.Client {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(addr),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(2*time.Second),
			kgo.HeartbeatInterval(100*time.Millisecond),
			kgo.FetchMaxWait(100*time.Millisecond),
		)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	live, dead := member(), member()
	defer live.Close()
	go func() {
		for ctx.Err() == nil {
			live.PollFetches(ctx).EachRecord(func(r *kgo.Record) { records <- r })
		}
	}()
	deadCtx, kill := context.WithCancel(ctx)
	go func() {
		for deadCtx.Err() == nil {
			dead.PollFetches(deadCtx)
		}
	}()
	// Both members hold partitions before the broker stops.
	adm := kadm.NewClient(newClient(t, b))
	waitMembers(t, adm, group, 2)

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The second member dies with the broker down: it never leaves.
	kill()
	go dead.Close() // its leave cannot reach the broker; do not wait
	b, err = Start(t.Context(), DataDir(dir), Addr(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	producer := newClient(t, b, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const n = 100
	for i := range n {
		r := &kgo.Record{Value: []byte{byte(i)}, Partition: int32(i % 4)}
		if err := producer.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Every partition reaches the live member, including the dead one's.
	seen := make(map[int32]bool)
	timeout := time.After(30 * time.Second)
	for len(seen) < 4 {
		select {
		case r := <-records:
			seen[r.Partition] = true
		case <-timeout:
			t.Fatalf("after the restart, the live member got records of partitions %v only", seen)
		}
	}
}

func waitMembers(t *testing.T, adm *kadm.Client, group string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		groups, err := adm.DescribeGroups(t.Context(), group)
		if err == nil {
			if g, ok := groups[group]; ok && g.State == "Stable" && len(g.Members) == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never had %d stable members: %v %v", group, want, groups, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRebalanceTimeoutIsAtMostHalfTheSessionTimeout(t *testing.T) {
	for _, c := range []struct{ session, rebalance, want int32 }{
		{10_000, 60_000, 5_000},
		{6_000, 10_000, 3_000},
		{10_000, 4_000, 4_000},
	} {
		req := kmsg.NewPtrJoinGroupRequest()
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = c.session, c.rebalance
		if resp, err, handled := shortenRebalanceTimeout(req); resp != nil || err != nil || handled {
			t.Errorf("the request was handled (%v, %v, %v); the broker must go on with it", resp, err, handled)
		}
		if req.RebalanceTimeoutMillis != c.want {
			t.Errorf("session %d ms, rebalance %d ms: rebalance timeout %d ms, want %d", c.session, c.rebalance, req.RebalanceTimeoutMillis, c.want)
		}
	}
}
