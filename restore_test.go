package sluice_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// A producer that crashed leaves its transaction open, and read-committed
// readers stop at it until the broker aborts it. Rows committed after it are
// part of the table: a restore must not report ready without them.
func TestRestoreWaitsForOpenTransactionsBeforeCommittedRows(t *testing.T) {
	b := startBroker(t)
	const table = "open-txn-table"
	admCl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	compact := "compact"
	if _, err := kadm.NewClient(admCl).CreateTopic(t.Context(), 1, -1, map[string]*string{"cleanup.policy": &compact}, table); err != nil {
		t.Fatal(err)
	}
	txnProducer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic(table))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	ctx := t.Context()
	crashed := txnProducer("crashed")
	if err := crashed.ProduceSync(ctx, &kgo.Record{Key: []byte("a"), Value: []byte("uncommitted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	later := txnProducer("later")
	if err := later.ProduceSync(ctx, &kgo.Record{Key: []byte("b"), Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := later.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	// The open transaction ends a little later, as the broker's timeout
	// would end it.
	go func() {
		time.Sleep(500 * time.Millisecond)
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := crashed.EndTransaction(actx, kgo.TryAbort); err != nil {
			t.Errorf("abort: %v", err)
		}
	}()
	v := startView(t, table, codec.String(), viewOpts(b, 1)...)
	if got, err := v.Get("b"); err != nil || got != "committed" {
		t.Errorf("ready view: b = %q, %v; want the row committed after the open transaction", got, err)
	}
	if ok, err := v.Has("a"); err != nil || ok {
		t.Errorf("ready view: has a = %v, %v; want the aborted row absent", ok, err)
	}
}

func TestStatsRestoreSumsThePartitionsProgress(t *testing.T) {
	s := sluice.Stats{Partitions: []sluice.PartitionStatus{
		{Partition: 0, State: "running", RestoreOffset: 10, RestoreEnd: 10, Restored: 10},
		{Partition: 1, State: "restoring", RestoreOffset: 4, RestoreEnd: 9, Restored: 3},
		{Partition: 2, State: "running"}, // up to date: nothing restored
	}}
	if got, want := s.Restore(), (sluice.RestoreProgress{Restored: 13, Total: 18, Restoring: true}); got != want {
		t.Errorf("Restore() = %+v, want %+v", got, want)
	}
	s.Partitions[1] = sluice.PartitionStatus{Partition: 1, State: "running", RestoreOffset: 9, RestoreEnd: 9, Restored: 8}
	if got, want := s.Restore(), (sluice.RestoreProgress{Restored: 18, Total: 18}); got != want {
		t.Errorf("Restore() = %+v, want %+v", got, want)
	}
}
