package sluice_test

import (
	"context"
	"fmt"
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

	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, table)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(table, 0)

	v, err := sluice.NewView(table, codec.String(), viewOpts(b, 1)...)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, v.Run)
	// The view restores to the end it saw with the transaction open, and
	// cannot read past the transaction: it is held at the start.
	waitFor(t, 30*time.Second, func() error {
		if s := v.Stats(); s.State != sluice.ViewRestoring || s.RestoreEnd != end.Offset || s.RestoreOffset != 0 {
			return fmt.Errorf("view %s, restored to %d of %d; want restoring, to %d from 0", s.State, s.RestoreOffset, s.RestoreEnd, end.Offset)
		}
		return nil
	})
	// The open transaction ends, as the broker's timeout would end it.
	if err := crashed.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatalf("abort: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := v.WaitReady(wctx); err != nil {
		t.Fatalf("view not ready after the transaction ended: %v", err)
	}
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
