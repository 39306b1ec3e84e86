package sluice_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
	"github.com/sluice-io/sluice/web"
)

// standbyProcessor runs a processor of g with Standbys(1) in its own state
// directory, as on a machine of its own.
func standbyProcessor(t *testing.T, g *sluice.Group[counter], opts []sluice.ProcessorOpt) (*sluice.Processor[counter], *running) {
	t.Helper()
	p, err := sluice.NewProcessor(g, append(slices.Clone(opts), sluice.Standbys(1))...)
	if err != nil {
		t.Fatalf("new processor: %v", err)
	}
	return p, runInBackground(t, p.Run)
}

// owned returns the partitions p runs.
func owned(p *sluice.Processor[counter]) []int32 {
	var ps []int32
	for _, st := range p.Stats().Partitions {
		if st.State == "running" {
			ps = append(ps, st.Partition)
		}
	}
	return ps
}

// caughtUp reports nil once p keeps a warm copy, caught up with its
// changelog, of exactly the partitions in want.
func caughtUp(p *sluice.Processor[counter], want []int32) error {
	st := p.Stats()
	var got []int32
	for _, s := range st.Standbys {
		if s.State != "following" || s.Behind != 0 {
			return fmt.Errorf("standby %+v has not caught up", s)
		}
		got = append(got, s.Partition)
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("standbys of %v, want %v", got, want)
	}
	return nil
}

// splitEvenly waits until a and b run half of parts partitions each and
// each keeps a caught-up copy of the other's.
func splitEvenly(t *testing.T, a, b *sluice.Processor[counter], parts int) {
	t.Helper()
	waitFor(t, 60*time.Second, func() error {
		oa, ob := owned(a), owned(b)
		if len(oa) != parts/2 || len(ob) != parts/2 {
			return fmt.Errorf("a runs %v and b runs %v, want %d each", oa, ob, parts/2)
		}
		if err := caughtUp(a, ob); err != nil {
			return fmt.Errorf("a: %w", err)
		}
		if err := caughtUp(b, oa); err != nil {
			return fmt.Errorf("b: %w", err)
		}
		return nil
	})
}

func TestStandbyTakeoverRestoresOnlyTheTailAndKeepsCountsExact(t *testing.T) {
	testStandbyTakeover(t)
}

func TestStandbyTakeoverRestoresOnlyTheTailExactlyOnce(t *testing.T) {
	testStandbyTakeover(t, sluice.Guarantee(sluice.ExactlyOnce))
}

// testStandbyTakeover runs two processors with Standbys(1), stops one, and
// checks that the other takes its partitions over from its warm copies.
func testStandbyTakeover(t *testing.T, extra ...sluice.ProcessorOpt) {
	br := startBroker(t)
	const parts = 4
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("standby", "events", &calls)
	reg := prometheus.NewRegistry()
	pa, _ := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), append(extra, sluice.Metrics(reg))...))
	pb, rb := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), extra...))
	v := startView(t, "standby-table", codec.JSON[counter](), viewOpts(br, parts)...)

	// A table of 4000 rows, each written once.
	const rows = 4000
	emitN(t, em, rows, rows, want)
	expectCounts(t, v, want, 60*time.Second)
	splitEvenly(t, pa, pb, parts)
	moving := owned(pb)
	checkStandbysShown(t, pa, reg, moving)

	// A tail that a keeps up with while b still runs.
	const tail = 200
	emitN(t, em, tail, 50, want)
	expectCounts(t, v, want, 30*time.Second)
	rb.stop(t)

	// a takes b's partitions over from its copies.
	waitFor(t, 30*time.Second, func() error {
		if got := owned(pa); len(got) != parts {
			return fmt.Errorf("a runs %v, want all %d partitions", got, parts)
		}
		return nil
	})
	var restored, end int64
	for _, ps := range pa.Stats().Partitions {
		if slices.Contains(moving, ps.Partition) {
			restored += ps.Restored
			end += ps.RestoreEnd
		}
	}
	t.Logf("taking over %v restored %d changelog records; their changelogs end at offsets summing to %d", moving, restored, end)
	if end < rows/2 {
		t.Fatalf("the partitions taken over end at changelog offsets summing to %d, want at least the %d rows b wrote", end, rows/2)
	}
	if restored > tail {
		t.Fatalf("taking over %v restored %d changelog records of %d; with warm copies only the tail of at most %d is read",
			moving, restored, end, tail)
	}
	if st := pa.Stats(); len(st.Standbys) != 0 {
		t.Fatalf("a alone keeps standbys %+v; a copy on the owner is none", st.Standbys)
	}

	// Counting goes on from the rows the copies held.
	emitN(t, em, 1000, 100, want)
	expectCounts(t, v, want, 30*time.Second)
	// Exactly once, a record of an aborted transaction is handled again;
	// the counts above are what must be exact.
	if got, sent := calls.Load(), int64(rows+tail+1000); len(extra) == 0 && got != sent {
		t.Fatalf("handled %d records, want each of the %d once", got, sent)
	}
}

// checkStandbysShown checks that p's metrics and the monitor show its
// caught-up copies of partitions ps.
func checkStandbysShown(t *testing.T, p *sluice.Processor[counter], reg *prometheus.Registry, ps []int32) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]*dto.MetricFamily)
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got, _ := sumOf(byName, "sluice_standby_partitions", map[string]string{"state": "following"}); got != float64(len(ps)) {
		t.Errorf("sluice_standby_partitions{state=following} = %v, want %d", got, len(ps))
	}
	if behind, series := sumOf(byName, "sluice_standby_behind_records", nil); behind != 0 || series != len(ps) {
		t.Errorf("sluice_standby_behind_records sums to %v over %d series, want 0 over %d", behind, series, len(ps))
	}

	srv := httptest.NewServer(web.New(web.Processors(p)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Groups []struct {
			Standbys []struct {
				Partition int32
				State     string
				Behind    int64
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("monitor state: %v", err)
	}
	var shown []int32
	for _, g := range st.Groups {
		for _, s := range g.Standbys {
			if s.State != "following" || s.Behind != 0 {
				t.Errorf("monitor shows standby %+v, want following and 0 behind", s)
			}
			shown = append(shown, s.Partition)
		}
	}
	if !slices.Equal(shown, ps) {
		t.Errorf("monitor shows standbys of %v, want %v", shown, ps)
	}
}

func TestRestartedStandbyResumesFromItsCheckpoint(t *testing.T) {
	br := startBroker(t)
	const parts = 4
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("restandby", "events", &calls)
	optsB := processorOpts(br, parts, t.TempDir())
	pa, _ := standbyProcessor(t, g, processorOpts(br, parts, t.TempDir()))
	pb, rb := standbyProcessor(t, g, optsB)
	v := startView(t, "restandby-table", codec.JSON[counter](), viewOpts(br, parts)...)

	const rows = 4000
	emitN(t, em, rows, rows, want)
	expectCounts(t, v, want, 60*time.Second)
	splitEvenly(t, pa, pb, parts)
	rb.stop(t)

	// While b is away, a writes a few hundred more changelog records.
	const away = 300
	emitN(t, em, away, away, want)
	expectCounts(t, v, want, 30*time.Second)

	// b comes back with the same state directory: whether it owns a
	// partition or keeps a copy of it, it reads only what it missed.
	pb, _ = standbyProcessor(t, g, optsB)
	splitEvenly(t, pa, pb, parts)
	st := pb.Stats()
	var restored int64
	for _, ps := range st.Partitions {
		restored += ps.Restored
	}
	for _, s := range st.Standbys {
		restored += s.Restored
	}
	if restored > away {
		t.Fatalf("b restored %d changelog records after a restart (partitions %+v, standbys %+v); from its checkpoints at most the %d it missed",
			restored, st.Partitions, st.Standbys, away)
	}
	emitN(t, em, 500, 100, want)
	expectCounts(t, v, want, 30*time.Second)
	if got, sent := calls.Load(), int64(rows+away+500); got != sent {
		t.Fatalf("handled %d records, want each of the %d once", got, sent)
	}
}

func TestStandbysOfAGroupWithoutATableIsAnError(t *testing.T) {
	g := sluice.DefineGroup[counter]("stateless")
	sluice.Input(g, "events", codec.String(), func(*sluice.Context[counter], string) error { return nil })
	for _, n := range []int{1, -1} {
		_, err := sluice.NewProcessor(g, sluice.Standbys(n))
		if err == nil || !strings.Contains(err.Error(), "Standbys") {
			t.Fatalf("Standbys(%d): got %v, want an error naming Standbys", n, err)
		}
	}
	if _, err := sluice.NewProcessor(g, sluice.Standbys(0)); err != nil {
		t.Fatalf("Standbys(0) is the default and needs no table: %v", err)
	}
}

func TestThreeProcessorsTakeOverALeavingOnesPartitionsFromTheirCopies(t *testing.T) {
	br := startBroker(t)
	const parts = 6
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("three", "events", &calls)
	var procs []*sluice.Processor[counter]
	var runs []*running
	for range 3 {
		p, r := standbyProcessor(t, g, processorOpts(br, parts, t.TempDir()))
		procs, runs = append(procs, p), append(runs, r)
	}
	v := startView(t, "three-table", codec.JSON[counter](), viewOpts(br, parts)...)
	const rows = 6000
	emitN(t, em, rows, rows, want)
	expectCounts(t, v, want, 60*time.Second)

	// Each runs 2 partitions and keeps caught-up copies of 2 others.
	waitFor(t, 60*time.Second, func() error {
		copies := make(map[int32]int)
		for i, p := range procs {
			mine := owned(p)
			if len(mine) != parts/3 {
				return fmt.Errorf("processor %d runs %v, want %d partitions", i, mine, parts/3)
			}
			for _, s := range p.Stats().Standbys {
				// Every partition holds rows by now.
				if s.State != "following" || s.Behind != 0 || s.Offset == 0 || slices.Contains(mine, s.Partition) {
					return fmt.Errorf("processor %d: standby %+v of its %v", i, s, mine)
				}
				copies[s.Partition]++
			}
		}
		for p := range int32(parts) {
			if copies[p] != 1 {
				return fmt.Errorf("partition %d has %d copies, want 1", p, copies[p])
			}
		}
		return nil
	})
	leaving := owned(procs[2])
	for i, p := range procs {
		t.Logf("processor %d runs %v, standbys %+v", i, owned(p), p.Stats().Standbys)
	}
	runs[2].stop(t)

	waitFor(t, 30*time.Second, func() error {
		if a, b := owned(procs[0]), owned(procs[1]); len(a)+len(b) != parts {
			return fmt.Errorf("the two left run %v and %v, want all %d partitions", a, b, parts)
		}
		return nil
	})
	var restored, end int64
	for _, p := range procs[:2] {
		for _, ps := range p.Stats().Partitions {
			if slices.Contains(leaving, ps.Partition) {
				restored += ps.Restored
				end += ps.RestoreEnd
			}
		}
	}
	t.Logf("taking over %v restored %d changelog records; their changelogs end at offsets summing to %d", leaving, restored, end)
	if end < rows/6 || restored != 0 {
		t.Fatalf("taking over %v restored %d changelog records of %d; each new owner had a caught-up copy", leaving, restored, end)
	}
	emitN(t, em, 600, 60, want)
	expectCounts(t, v, want, 30*time.Second)
	if got, sent := calls.Load(), int64(rows+600); got != sent {
		t.Fatalf("handled %d records, want each of the %d once", got, sent)
	}
}

// A member killed in the middle of a transaction leaves it open at the end
// of its partitions' changelogs, and the broker aborts it later: the
// changelog then ends in aborted records and an abort marker, which the
// read-committed reader of a warm copy gets only as a control record. The
// member taking the partition over from its copy must finish restoring
// past them, though nothing is written to the changelog after them, and
// keep none of their rows. A transactional producer of the test's own plays
// the killed member's part, so that the transaction is open when the
// partition moves and ends only once the new owner is restoring.
func TestWarmStandbyTakeoverFinishesPastAnAbortedTransactionAtTheChangelogEnd(t *testing.T) {
	br := startBroker(t)
	const parts = 2
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("abortedtail", "events", &calls)
	eos := sluice.Guarantee(sluice.ExactlyOnce)
	pa, _ := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), eos))
	pb, rb := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), eos))
	v := startView(t, "abortedtail-table", codec.JSON[counter](), viewOpts(br, parts)...)
	emitN(t, em, 400, 400, want)
	expectCounts(t, v, want, 60*time.Second)
	splitEvenly(t, pa, pb, parts)
	moving := owned(pb)[0]

	dead, err := kgo.NewClient(kgo.SeedBrokers(br.Addrs()...), kgo.TransactionalID("abortedtail-dead"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic("abortedtail-table"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rec := &kgo.Record{Partition: moving, Key: []byte(fmt.Sprintf("aborted-%d", i)), Value: []byte(`{"Count":1000}`)}
		if err := dead.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rb.stop(t)

	// a takes the partition over from its copy, and its restore is held
	// at the open transaction.
	waitFor(t, 30*time.Second, func() error {
		for _, s := range pa.Stats().Partitions {
			if s.Partition == moving && s.State == "restoring" {
				return nil
			}
		}
		return fmt.Errorf("a does not restore partition %d: %+v", moving, pa.Stats().Partitions)
	})
	if err := dead.EndTransaction(t.Context(), kgo.TryAbort); err != nil {
		t.Fatalf("abort: %v", err)
	}
	waitFor(t, 30*time.Second, func() error {
		if got := owned(pa); len(got) != parts {
			return fmt.Errorf("a runs %v, want all %d partitions; partitions %+v", got, parts, pa.Stats().Partitions)
		}
		return nil
	})
	for _, s := range pa.Stats().Partitions {
		if s.Partition == moving && s.Restored != 0 {
			t.Errorf("taking partition %d over restored %d records; its copy was warm and the tail only aborted", moving, s.Restored)
		}
	}
	emitN(t, em, 200, 200, want)
	expectCounts(t, v, want, 30*time.Second)
	for i := range 3 {
		if ok, err := v.Has(fmt.Sprintf("aborted-%d", i)); err != nil || ok {
			t.Errorf("table has aborted-%d = %v, %v; want the aborted row absent", i, ok, err)
		}
	}
}

// Environment of TestStandbyChild.
const (
	standbyChildBrokersEnv = "SLUICE_TEST_STANDBY_CHILD_BROKERS"
	standbyChildDirEnv     = "SLUICE_TEST_STANDBY_CHILD_DIR"
	standbyChildCaughtUp   = "standbys caught up"
	standbyChildParts      = 4
	standbyChildInstance   = "standby-b"
)

// TestStandbyChild is the child process of
// TestSIGKILLOfAStandbyLeavesCopiesThatTakeOverWithExactCounts: a processor
// with Standbys(1) and a static member id, that says so on its standard
// output once it keeps caught-up copies of half the partitions, and goes on
// until killed. Run otherwise, it skips.
func TestStandbyChild(t *testing.T) {
	addrs := os.Getenv(standbyChildBrokersEnv)
	if addrs == "" {
		t.Skip("the child process of TestSIGKILLOfAStandbyLeavesCopiesThatTakeOverWithExactCounts")
	}
	var calls atomic.Int64
	p, err := sluice.NewProcessor(countingGroup("killed", "events", &calls),
		sluice.Brokers(strings.Split(addrs, ",")...), sluice.TopicDefaults(standbyChildParts, 1),
		sluice.Storage(pebble.Builder(os.Getenv(standbyChildDirEnv))), sluice.CommitInterval(200*time.Millisecond),
		sluice.Standbys(1), sluice.InstanceID(standbyChildInstance), sluice.Guarantee(sluice.ExactlyOnce))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for {
		var caught int
		for _, s := range p.Stats().Standbys {
			if s.State == "following" && s.Behind == 0 && s.Offset > 0 {
				caught++
			}
		}
		if caught == standbyChildParts/2 {
			fmt.Println(standbyChildCaughtUp)
			break
		}
		select {
		case err := <-done:
			t.Fatalf("processor stopped before its copies caught up: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	<-done
	t.Fatal("not killed")
}

// A processor killed with SIGKILL while it keeps warm copies leaves stores
// that reopen at their checkpoints; restarted, it takes the partitions of
// the stopping owner over from them, and the counts stay exact. Exactly
// once, since the killed processor owns partitions too.
func TestSIGKILLOfAStandbyLeavesCopiesThatTakeOverWithExactCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	br := startBroker(t)
	const parts = standbyChildParts
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("killed", "events", &calls)
	eos := sluice.Guarantee(sluice.ExactlyOnce)
	pa, ra := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), eos))
	v := startView(t, "killed-table", codec.JSON[counter](), viewOpts(br, parts)...)
	const rows = 4000
	emitN(t, em, rows, rows, want)
	expectCounts(t, v, want, 60*time.Second)

	dir := t.TempDir()
	child := startChild(t, "TestStandbyChild", standbyChildCaughtUp,
		standbyChildBrokersEnv+"="+strings.Join(br.Addrs(), ","), standbyChildDirEnv+"="+dir)
	err := child.await(2 * time.Minute)
	// More rows while the copies follow, then the kill.
	if err == nil {
		emitN(t, em, 500, 500, want)
		expectCounts(t, v, want, 30*time.Second)
	}
	child.kill()
	if err != nil {
		t.Fatal(err)
	}

	// The same member id takes the killed member's place at once.
	pb, _ := standbyProcessor(t, g, append(processorOpts(br, parts, dir), sluice.InstanceID(standbyChildInstance), eos))
	splitEvenly(t, pa, pb, parts)
	var resumed int64
	for _, s := range pb.Stats().Standbys {
		resumed += s.Restored
	}
	moving := owned(pa)
	ra.stop(t)
	waitFor(t, 30*time.Second, func() error {
		if got := owned(pb); len(got) != parts {
			return fmt.Errorf("b runs %v, want all %d partitions", got, parts)
		}
		return nil
	})
	var restored int64
	for _, ps := range pb.Stats().Partitions {
		if slices.Contains(moving, ps.Partition) {
			restored += ps.Restored
		}
	}
	t.Logf("after the SIGKILL the copies restored %d changelog records, and taking over %v from them %d", resumed, moving, restored)
	emitN(t, em, 1000, 100, want)
	expectCounts(t, v, want, 30*time.Second)
}
