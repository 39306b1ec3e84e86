package sluicetest_test

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// placed is a row that says where its record was processed.
type placed struct {
	Partition int32
	N         int
}

// placing counts records per key, keeping the partition of the last, emits
// "<key>:<n>" to "placed-out" with the record's headers, and loops back to
// "echo-<key>" for records whose value is "echo".
func placing() (*sluice.Group[placed], *sluice.OutputTopic[string], *sluice.LoopTopic[string]) {
	g := sluice.DefineGroup[placed]("placing")
	sluice.Persist(g, codec.JSON[placed]())
	out := sluice.Output(g, "placed-out", codec.String())
	var loop *sluice.LoopTopic[string]
	count := func(ctx *sluice.Context[placed], v string) error {
		row, _ := ctx.Value()
		row.Partition, row.N = ctx.Partition(), row.N+1
		ctx.SetValue(row)
		if v == "fail" {
			return errors.New("refused")
		}
		if v == "echo" {
			if err := loop.Loopback(ctx, "echo-"+ctx.Key(), ctx.Key()); err != nil {
				return err
			}
		}
		return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s:%d", ctx.Key(), row.N), ctx.Headers()...)
	}
	sluice.Input(g, "placed-in", codec.String(), count)
	loop = sluice.Loop(g, codec.String(), count)
	return g, out, loop
}

func newTester[V any](t *testing.T, g *sluice.Group[V], opts ...sluicetest.Option) *sluicetest.Tester[V] {
	t.Helper()
	tt, err := sluicetest.New(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func send(t *testing.T, h sluicetest.Harness, topic, key, v string, opts ...sluicetest.RecordOpt) {
	t.Helper()
	if err := sluicetest.Send(h, topic, key, v, opts...); err != nil {
		t.Fatal(err)
	}
}

func row[V any](t *testing.T, tt *sluicetest.Tester[V], key string) (V, bool) {
	t.Helper()
	v, ok, err := tt.Row(key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

func outputs(t *testing.T, h sluicetest.Harness, o *sluice.OutputTopic[string]) []string {
	t.Helper()
	msgs, err := sluicetest.Output(h, o)
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, m := range msgs {
		vs = append(vs, m.Value)
	}
	return vs
}

func TestTesterProcessesRecordsOnThePartitionTheHasherChooses(t *testing.T) {
	for _, h := range []sluice.Hasher{sluice.Murmur2, sluice.CRC32} {
		t.Run(h.String(), func(t *testing.T) {
			g, _, _ := placing()
			tt := newTester(t, g, sluicetest.Partitions(7), sluicetest.ProcessorOptions(sluice.Partitioning(h)))
			partitions := make(map[int32]bool)
			for i := range 20 {
				key := fmt.Sprint("user-", i)
				send(t, tt, "placed-in", key, "x")
				r, ok := row(t, tt, key)
				want := h.Partition(key, 7)
				if !ok || r.Partition != want || tt.PartitionOf(key) != want {
					t.Fatalf("row of %s = %+v, %v; want it processed on partition %d", key, r, ok, want)
				}
				partitions[r.Partition] = true
			}
			if len(partitions) < 2 {
				t.Errorf("20 keys all on partitions %v: the tester does not spread keys", partitions)
			}
		})
	}
}

func TestTesterDeliversALoopbackToItsKeysPartition(t *testing.T) {
	g, out, loop := placing()
	tt := newTester(t, g)
	// A key whose loopback target lives on another partition.
	var key string
	for i := 0; ; i++ {
		key = fmt.Sprint("k", i)
		if tt.PartitionOf(key) != tt.PartitionOf("echo-"+key) {
			break
		}
	}
	send(t, tt, "placed-in", key, "echo")
	r, ok := row(t, tt, "echo-"+key)
	if want := tt.PartitionOf("echo-" + key); !ok || r.Partition != want {
		t.Fatalf("row of the loopback's key = %+v, %v; want it processed on partition %d", r, ok, want)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{key + ":1", "echo-" + key + ":1"}) {
		t.Errorf("outputs = %q, want the input's emit then the loopback's", got)
	}
	lbs, err := sluicetest.Loopbacks(tt, loop)
	if err != nil || len(lbs) != 1 || lbs[0].Key != "echo-"+key || lbs[0].Value != key || lbs[0].Partition != r.Partition {
		t.Errorf("loopbacks = %+v, %v; want one to echo-%s on its partition", lbs, err, key)
	}
}

func TestTesterOutputsAreTypedWithKeysHeadersAndPartitions(t *testing.T) {
	g, out, _ := placing()
	tt := newTester(t, g, sluicetest.Partitions(3))
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	send(t, tt, "placed-in", "a", "x", sluicetest.WithHeaders(sluice.Header{Key: "trace", Value: []byte("t1")}), sluicetest.WithTimestamp(ts))
	send(t, tt, "placed-in", "a", "x")
	msgs, err := sluicetest.Output(tt, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("outputs = %+v, want 2", msgs)
	}
	m := msgs[0]
	if m.Topic != "placed-out" || m.Key != "a" || m.Value != "a:1" || m.Partition != tt.PartitionOf("a") || m.Offset != 0 {
		t.Errorf("first output = %+v, want a=a:1 at offset 0 of a's partition", m)
	}
	if v, ok := m.Header("trace"); !ok || v != "t1" {
		t.Errorf("header trace = %q, %v; want the input's t1", v, ok)
	}
	if msgs[1].Value != "a:2" || msgs[1].Offset != 1 {
		t.Errorf("second output = %+v, want a:2 at offset 1", msgs[1])
	}
	if err := tt.SendRaw("placed-out", "a", []byte("x")); err == nil {
		t.Error("SendRaw to a topic the group does not read succeeded")
	}
	if err := sluicetest.Send(tt, "placed-in", "a", 42); err == nil {
		t.Error("Send of an int to a string input succeeded")
	}
}

// A handle that was never set (a nil *OutputTopic, *LoopTopic, …) is an
// error of the call that reads or seeds through it.
func TestTesterCallsThroughANilHandleFailWithAnError(t *testing.T) {
	g, _, _ := placing()
	tt := newTester(t, g)
	var out *sluice.OutputTopic[string]
	var loop *sluice.LoopTopic[string]
	var join *sluice.JoinedTable[string]
	for name, call := range map[string]func() error{
		"Output":    func() error { _, err := sluicetest.Output(tt, out); return err },
		"Loopbacks": func() error { _, err := sluicetest.Loopbacks(tt, loop); return err },
		"SeedJoin":  func() error { return sluicetest.SeedJoin(tt, join, "a", "x") },
	} {
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("%s of a nil handle panicked: %v", name, v)
				}
			}()
			if err := call(); err == nil || !strings.Contains(err.Error(), "is nil") {
				t.Errorf("%s of a nil handle: %v, want an error that it is nil", name, err)
			}
		}()
	}
}

func TestTesterSeedsAndReadsTableRows(t *testing.T) {
	g, _, _ := placing()
	tt := newTester(t, g)
	if err := tt.SetRow("a", placed{N: 41}); err != nil {
		t.Fatal(err)
	}
	send(t, tt, "placed-in", "a", "x")
	if r, _ := row(t, tt, "a"); r.N != 42 {
		t.Errorf("row a = %+v, want the seeded 41 counted up to 42", r)
	}
	if err := tt.DeleteRow("a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := row(t, tt, "a"); ok {
		t.Error("row a exists after DeleteRow")
	}
	send(t, tt, "placed-in", "a", "x")
	if r, _ := row(t, tt, "a"); r.N != 1 {
		t.Errorf("row a = %+v after the delete, want a fresh count of 1", r)
	}
	cl := tt.Records(g.TableTopic())
	if len(cl) != 4 || cl[2].Value != nil {
		t.Errorf("changelog = %+v, want seed, count, tombstone, count", cl)
	}
}

func TestTesterDeadLettersCarryTheirReasonAndStatsCount(t *testing.T) {
	g, out, _ := placing()
	tt := newTester(t, g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("placed-dead")), sluice.StrictPartitioning()))
	send(t, tt, "placed-in", "a", "x")
	send(t, tt, "placed-in", "b", "fail", sluicetest.WithHeaders(sluice.Header{Key: "trace", Value: []byte("t2")}))
	wrong := (tt.PartitionOf("c") + 1) % tt.Partitions()
	send(t, tt, "placed-in", "c", "x", sluicetest.ToPartition(wrong))
	dls := tt.DeadLetters()
	if len(dls) != 2 {
		t.Fatalf("dead letters = %+v, want 2", dls)
	}
	for i, want := range []struct{ key, kind string }{{"b", "handler"}, {"c", "misplaced"}} {
		dl := dls[i]
		kind, _ := dl.Header(sluice.HeaderErrorKind)
		src, _ := dl.Header(sluice.HeaderSourceTopic)
		if dl.Key != want.key || kind != want.kind || src != "placed-in" {
			t.Errorf("dead letter %d = %s kind %s from %s, want %s kind %s from placed-in", i, dl.Key, kind, src, want.key, want.kind)
		}
	}
	if msg, _ := dls[0].Header(sluice.HeaderError); !strings.Contains(msg, "refused") {
		t.Errorf("error header = %q, want the handler's error", msg)
	}
	if trace, _ := dls[0].Header("trace"); trace != "t2" {
		t.Errorf("dead letter trace header = %q, want the record's t2", trace)
	}
	if _, ok := row(t, tt, "b"); ok {
		t.Error("the failed record's row change was kept")
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("outputs = %q, want only the successful record's", got)
	}
	s := tt.Stats()
	if s.Consumed != 3 || s.DeadLettered != 2 || s.Misplaced != 1 || s.Skipped != 0 {
		t.Errorf("stats: consumed %d, dead-lettered %d, misplaced %d, skipped %d; want 3, 2, 1, 0", s.Consumed, s.DeadLettered, s.Misplaced, s.Skipped)
	}
}

func TestTesterFailPolicyStopsAtTheRecordAndMeetsItAgain(t *testing.T) {
	g, out, _ := placing()
	tt := newTester(t, g, sluicetest.ManualCommit())
	send(t, tt, "placed-in", "a", "x")
	err := sluicetest.Send(tt, "placed-in", "a", "fail")
	var rerr *sluice.RecordError
	if !errors.As(err, &rerr) || rerr.Key != "a" || rerr.Offset != 1 {
		t.Fatalf("Send of a failing record = %v, want a RecordError at a@1", err)
	}
	if r, _ := row(t, tt, "a"); r.N != 1 {
		t.Errorf("row a = %+v, want the record before the failed one committed", r)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("outputs = %q, want the record's before the failed one", got)
	}
	if err := tt.Commit(); !errors.As(err, &rerr) || rerr.Offset != 1 {
		t.Errorf("Commit = %v, want the failed record met again", err)
	}
	if s := tt.Stats(); s.Failed != 2 {
		t.Errorf("Failed = %d, want 2", s.Failed)
	}
}

func TestTesterCrashDropsUncommittedWorkAndRestoresCommittedRows(t *testing.T) {
	g, out, _ := placing()
	tt := newTester(t, g, sluicetest.ManualCommit())
	send(t, tt, "placed-in", "a", "x")
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	send(t, tt, "placed-in", "a", "x")
	send(t, tt, "placed-in", "b", "x")
	tt.Crash()
	if r, _ := row(t, tt, "a"); r.N != 1 {
		t.Errorf("row a after the crash = %+v, want the committed count 1", r)
	}
	if _, ok := row(t, tt, "b"); ok {
		t.Error("row b survived the crash uncommitted")
	}
	// At least once, the outputs of the lost work were acknowledged: the
	// records are processed again and their outputs written twice.
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	if r, _ := row(t, tt, "a"); r.N != 2 {
		t.Errorf("row a after processing again = %+v, want 2, each record counted once", r)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1", "a:2", "b:1", "a:2", "b:1"}) {
		t.Errorf("outputs = %q, want the lost records' outputs twice (at least once)", got)
	}
}

func TestTesterCrashExactlyOnceLeavesEachRecordsEffectsOnce(t *testing.T) {
	g, out, _ := placing()
	tt := newTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)))
	send(t, tt, "placed-in", "a", "x")
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	send(t, tt, "placed-in", "a", "x")
	tt.Crash()
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1", "a:2"}) {
		t.Errorf("outputs = %q, want each record's once", got)
	}
	if r, _ := row(t, tt, "a"); r.N != 2 {
		t.Errorf("row a = %+v, want 2", r)
	}
}

func TestTesterRebalanceMovesAPartitionWithItsRows(t *testing.T) {
	g, _, _ := placing()
	tt := newTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.CacheRows(1)))
	send(t, tt, "placed-in", "a", "x")
	send(t, tt, "placed-in", "a", "x")
	// The rebalance commits the work in hand before the partition moves.
	if err := tt.Rebalance(tt.PartitionOf("a")); err != nil {
		t.Fatal(err)
	}
	send(t, tt, "placed-in", "a", "x")
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	if r, _ := row(t, tt, "a"); r.N != 3 {
		t.Errorf("row a = %+v, want 3: the new engine restored 2 from the changelog", r)
	}
	if err := tt.Rebalance(tt.Partitions()); err == nil {
		t.Error("rebalance of a partition that does not exist succeeded")
	}
}

func TestTesterExactlyOnceAbortHidesOutputsAndRollsBackTheTable(t *testing.T) {
	g, out, _ := placing()
	tt := newTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)))
	send(t, tt, "placed-in", "a", "x")
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	send(t, tt, "placed-in", "a", "echo")
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("outputs before the commit = %q, want the open transaction's hidden", got)
	}
	if err := tt.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("outputs after the abort = %q, want the aborted ones never visible", got)
	}
	if r, _ := row(t, tt, "a"); r.N != 1 {
		t.Errorf("row a after the abort = %+v, want 1", r)
	}
	if _, ok := row(t, tt, "echo-a"); ok {
		t.Error("the aborted record's loopback was processed")
	}
	// The aborted record is read again and its effects committed once.
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"a:1", "a:2", "echo-a:1"}) {
		t.Errorf("outputs after processing again = %q", got)
	}
	if r, _ := row(t, tt, "a"); r.N != 2 {
		t.Errorf("row a = %+v, want 2", r)
	}
	s := tt.Stats()
	if s.Aborts != 1 || s.Redone != 1 || s.Commits < 2 {
		t.Errorf("aborts %d, redone %d, commits %d; want 1, 1, at least 2", s.Aborts, s.Redone, s.Commits)
	}
	atLeastOnce := newTester(t, g)
	if err := atLeastOnce.Abort(); err == nil {
		t.Error("Abort at least once succeeded")
	}
}

func TestTesterSeedsJoinedAndLookupTables(t *testing.T) {
	g := sluice.DefineGroup[string]("enrich")
	sluice.Persist(g, codec.String())
	names := sluice.Join(g, "names", codec.String())
	prices := sluice.Lookup(g, "prices", codec.Int64())
	sluice.Input(g, "orders", codec.String(), func(ctx *sluice.Context[string], item string) error {
		name, _, err := names.Get(ctx)
		if err != nil {
			return err
		}
		price, ok, err := prices.Get(ctx, item)
		if err != nil {
			return err
		}
		ctx.SetValue(fmt.Sprintf("%s bought %s for %d (%v)", name, item, price, ok))
		return nil
	})
	tt := newTester(t, g)
	if err := sluicetest.SeedJoin(tt, names, "u1", "Ada"); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.SeedLookup(tt, prices, "book", 12); err != nil {
		t.Fatal(err)
	}
	send(t, tt, "orders", "u1", "book")
	if r, _ := row(t, tt, "u1"); r != "Ada bought book for 12 (true)" {
		t.Errorf("row = %q", r)
	}
	// Joined rows come back from their topic after a crash.
	tt.Crash()
	send(t, tt, "orders", "u1", "pen")
	if r, _ := row(t, tt, "u1"); r != "Ada bought pen for 0 (false)" {
		t.Errorf("row after the crash = %q", r)
	}
}

func TestCallRunsAHandlerAloneOnASeededRow(t *testing.T) {
	g := sluice.DefineGroup[int]("calls")
	sluice.Persist(g, codec.JSON[int]())
	out := sluice.Output(g, "calls-out", codec.String())
	add := func(ctx *sluice.Context[int], n int) error {
		if n < 0 {
			return errors.New("negative")
		}
		v, _ := ctx.Value()
		ctx.SetValue(v + n)
		return out.Emit(ctx, ctx.Key(), fmt.Sprint(v+n))
	}
	sluice.Input(g, "calls-in", codec.JSON[int](), add)
	tt := newTester(t, g)
	if err := tt.SetRow("k", 40); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Call(tt, add, "k", 2); err != nil {
		t.Fatal(err)
	}
	if v, _ := row(t, tt, "k"); v != 42 {
		t.Errorf("row = %d, want 42", v)
	}
	if got := outputs(t, tt, out); !slices.Equal(got, []string{"42"}) {
		t.Errorf("outputs = %q, want 42", got)
	}
	err := sluicetest.Call(tt, add, "k", -1)
	var rerr *sluice.RecordError
	if !errors.As(err, &rerr) || !strings.Contains(err.Error(), "negative") {
		t.Errorf("Call of a failing handler = %v, want its error in a RecordError", err)
	}
	if v, _ := row(t, tt, "k"); v != 42 {
		t.Errorf("row after the failed call = %d, want 42", v)
	}
}

func TestNewRejectsWhatNewProcessorRejects(t *testing.T) {
	if _, err := sluicetest.New(sluice.DefineGroup[int]("empty")); err == nil || !strings.Contains(err.Error(), "no inputs") {
		t.Errorf("New of a group without inputs = %v", err)
	}
	g, _, _ := placing()
	if _, err := sluicetest.New(g, sluicetest.ProcessorOptions(sluice.CacheRows(0))); err == nil {
		t.Error("New with CacheRows(0) succeeded")
	}
	if _, err := sluicetest.New(g, sluicetest.Partitions(0)); err == nil {
		t.Error("New with no partitions succeeded")
	}
}

func TestTesterStartsNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	g, _, _ := placing()
	tt := newTester(t, g, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)))
	send(t, tt, "placed-in", "a", "echo")
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	tt.Crash()
	if err := tt.Rebalance(); err != nil {
		t.Fatal(err)
	}
	// Fewer after is a goroutine of an earlier test ending meanwhile; the
	// tester must not have added any.
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before, %d after", before, after)
	}
}

func TestTesterStopsALoopbackThatNeverSettles(t *testing.T) {
	g := sluice.DefineGroup[int]("forever")
	var loop *sluice.LoopTopic[string]
	loop = sluice.Loop(g, codec.String(), func(ctx *sluice.Context[int], v string) error {
		return loop.Loopback(ctx, ctx.Key(), v)
	})
	tt := newTester(t, g)
	err := sluicetest.Send(tt, g.LoopTopic(), "k", "again")
	if err == nil || !strings.Contains(err.Error(), "without settling") {
		t.Errorf("Send = %v, want the loop reported", err)
	}
}
