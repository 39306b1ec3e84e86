package sluice

// Tests of the partition engine alone: records in, effects out, no broker.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"weak"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// applyLog is a memory store that keeps what each Apply was given.
type applyLog struct {
	store.Store
	changes [][]store.Change
	offsets []int64
}

func (s *applyLog) Apply(changes []store.Change, offset int64) error {
	s.changes = append(s.changes, slices.Clone(changes))
	s.offsets = append(s.offsets, offset)
	return s.Store.Apply(changes, offset)
}

// newTestEngine returns the engine of partition 0 of g, configured as a
// processor with opts would configure it, over a memory store.
func newTestEngine[V any](t *testing.T, g *Group[V], opts ...ProcessorOpt) (*engine[V], *applyLog, *Processor[V]) {
	t.Helper()
	p, err := NewProcessor(g, append([]ProcessorOpt{Storage(memory.Builder())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	st := &applyLog{Store: memory.New()}
	var m taskMetrics
	m.init(p.metrics, 0, g.inputTopics())
	e := newEngine(p.engineConfig(), enginePartition{partition: 0, table: st, metrics: &m})
	return e, st, p
}

// errHandler is the error handlers return for a record whose value is "fail".
var errHandler = errors.New("handler failed")

// counts is a group whose table holds maps, so that its rows are decoded
// anew on every read (no value-safe copy): each record adds its value to
// the key's map, emits "<key>=<value>" to out, and fails afterwards if the
// value is "fail".
func counts() *Group[map[string]int] {
	g := DefineGroup[map[string]int]("counts")
	Persist(g, codec.JSON[map[string]int]())
	out := Output(g, "out", codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[map[string]int], v string) error {
		m, _ := ctx.Value()
		if m == nil {
			m = make(map[string]int)
		}
		m[v]++
		ctx.SetValue(m)
		if err := out.Emit(ctx, ctx.Key(), ctx.Key()+"="+v); err != nil {
			return err
		}
		if v == "fail" {
			return errHandler
		}
		return nil
	})
	return g
}

func recs(kvs ...string) []*kgo.Record {
	var rs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		rs = append(rs, &kgo.Record{Topic: "in", Partition: 0, Offset: int64(len(rs)), Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	return rs
}

func values(rs []*kgo.Record) []string {
	var vs []string
	for _, r := range rs {
		vs = append(vs, string(r.Key)+":"+string(r.Value))
	}
	return vs
}

func rowOf[V any](t *testing.T, e *engine[V], key string) (V, bool) {
	t.Helper()
	v, ok, err := e.value(key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

func TestEngineUndoesAFailedRecordOnAMapRowDirtyInTheBatch(t *testing.T) {
	g := counts()
	e, _, _ := newTestEngine(t, g, OnError(Skip))
	done, err := e.process(context.Background(), recs("a", "x", "a", "fail", "b", "fail"))
	if err != nil || done != 3 {
		t.Fatalf("process = %d, %v; want 3, nil", done, err)
	}
	if m, _ := rowOf(t, e, "a"); fmt.Sprint(m) != "map[x:1]" {
		t.Errorf("row a = %v, want the row as the first record left it, map[x:1]", m)
	}
	if _, ok := rowOf(t, e, "b"); ok {
		t.Error("row b exists; the failed record that created it was undone")
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{`a:{"x":1}`}) {
		t.Errorf("changelog = %q, want only a's row as the successful record left it", got)
	}
}

func TestEngineFailStopsAtTheRecordAndKeepsWhatCameBefore(t *testing.T) {
	g := counts()
	e, _, p := newTestEngine(t, g)
	rs := recs("a", "x", "b", "fail", "c", "y")
	done, err := e.process(context.Background(), rs)
	var rerr *RecordError
	if !errors.As(err, &rerr) || !errors.Is(err, errHandler) {
		t.Fatalf("process error = %v, want a RecordError wrapping the handler's", err)
	}
	if done != 1 || rerr.Offset != 1 || rerr.Key != "b" {
		t.Errorf("stopped at record %d (error names offset %d key %q), want 1, offset 1, key b", done, rerr.Offset, rerr.Key)
	}
	if got := values(e.effects()); !slices.Equal(got, []string{"a:a=x"}) {
		t.Errorf("effects = %q, want the emit of the record before the failed one", got)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{`a:{"x":1}`}) {
		t.Errorf("changelog = %q, want a's row only", got)
	}
	if s := p.Stats(); s.Failed != 1 || s.Skipped != 0 {
		t.Errorf("Failed, Skipped = %d, %d; want 1, 0", s.Failed, s.Skipped)
	}
}

func TestEngineSkipCountsAndLeavesNoEffects(t *testing.T) {
	g := counts()
	e, _, p := newTestEngine(t, g, OnError(Skip))
	if _, err := e.process(context.Background(), recs("a", "x", "b", "fail", "c", "y")); err != nil {
		t.Fatal(err)
	}
	if got := values(e.effects()); !slices.Equal(got, []string{"a:a=x", "c:c=y"}) {
		t.Errorf("effects = %q, want the emits of the records that succeeded, in order", got)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{`a:{"x":1}`, `c:{"y":1}`}) {
		t.Errorf("changelog = %q, want the rows of the records that succeeded", got)
	}
	if s := p.Stats(); s.Skipped != 1 || s.Failed != 0 {
		t.Errorf("Skipped, Failed = %d, %d; want 1, 0", s.Skipped, s.Failed)
	}
}

func TestEngineDeadLetterWritesTheDeadLetterAndNoOtherEffect(t *testing.T) {
	g := counts()
	e, _, p := newTestEngine(t, g, OnError(DeadLetter("dead")))
	rs := recs("b", "fail")
	rs[0].Offset = 41
	rs[0].Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}
	if _, err := e.process(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	out := e.effects()
	if len(out) != 1 {
		t.Fatalf("effects = %q, want one dead letter", values(out))
	}
	dl := out[0]
	if dl.Topic != "dead" || string(dl.Key) != "b" || string(dl.Value) != "fail" || dl.Partition != -1 {
		t.Errorf("dead letter = %s/%d %q=%q, want dead/-1 b=fail", dl.Topic, dl.Partition, dl.Key, dl.Value)
	}
	headers := make(map[string]string)
	for _, h := range dl.Headers {
		headers[h.Key] = string(h.Value)
	}
	for k, want := range map[string]string{
		"trace": "t1", HeaderErrorKind: "handler", HeaderGroup: "counts",
		HeaderSourceTopic: "in", HeaderSourcePartition: "0", HeaderSourceOffset: "41",
	} {
		if headers[k] != want {
			t.Errorf("header %s = %q, want %q", k, headers[k], want)
		}
	}
	if !strings.Contains(headers[HeaderError], errHandler.Error()) || headers[HeaderFailedAt] == "" {
		t.Errorf("headers %v lack the error or the time it failed", headers)
	}
	if got := e.endBatch(); len(got) != 0 {
		t.Errorf("changelog = %q, want nothing: the failed record's row change is undone", values(got))
	}
	if s := p.Stats(); s.DeadLettered != 1 {
		t.Errorf("DeadLettered = %d, want 1", s.DeadLettered)
	}
}

// picky encodes strings but refuses "bad".
type picky struct{ codec.Codec[string] }

func (c picky) Encode(v string) ([]byte, error) {
	if v == "bad" {
		return nil, errors.New("picky refuses bad")
	}
	return c.Codec.Encode(v)
}

func TestEngineEncodeFailureFailsTheRecordUnderThePolicy(t *testing.T) {
	g := DefineGroup[string]("picky")
	Persist[string](g, picky{codec.String()})
	out := Output(g, "out", codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[string], v string) error {
		ctx.SetValue(v)
		return out.Emit(ctx, ctx.Key(), v)
	})
	for _, tc := range []struct {
		policy Policy
		out    []string
	}{
		{Skip, []string{"a:good"}},
		{DeadLetter("dead"), []string{"a:good", "a:bad"}},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			e, _, _ := newTestEngine(t, g, OnError(tc.policy))
			if _, err := e.process(context.Background(), recs("a", "good", "a", "bad")); err != nil {
				t.Fatal(err)
			}
			if got := values(e.effects()); !slices.Equal(got, tc.out) {
				t.Errorf("effects = %q, want %q", got, tc.out)
			}
			if v, _ := rowOf(t, e, "a"); v != "good" {
				t.Errorf("row a = %q, want the value before the one that did not encode", v)
			}
		})
	}
	e, _, _ := newTestEngine(t, g)
	_, err := e.process(context.Background(), recs("a", "bad"))
	if err == nil || !strings.Contains(err.Error(), "picky refuses bad") {
		t.Errorf("under Fail, error = %v, want the encoding error", err)
	}
}

func TestEngineEmitsOnlyFromSuccessfulRecordsInOrder(t *testing.T) {
	g := DefineGroup[string]("emits")
	out := Output(g, "out", codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[string], v string) error {
		for i := range 2 {
			if err := out.Emit(ctx, ctx.Key(), fmt.Sprint(v, i)); err != nil {
				return err
			}
		}
		if v == "fail" {
			return errHandler
		}
		if v == "panic" {
			panic("handler panicked")
		}
		return nil
	})
	e, _, _ := newTestEngine(t, g, OnError(Skip))
	if _, err := e.process(context.Background(), recs("a", "x", "b", "fail", "c", "panic", "d", "y")); err != nil {
		t.Fatal(err)
	}
	want := []string{"a:x0", "a:x1", "d:y0", "d:y1"}
	if got := values(e.effects()); !slices.Equal(got, want) {
		t.Errorf("effects = %q, want %q", got, want)
	}
	if got := e.effects(); len(got) != 0 {
		t.Errorf("effects handed out twice: %q", values(got))
	}
}

// setOrDelete sets the row to v, or deletes it when v is empty.
func setOrDelete(ctx *Context[string], v string) error {
	if v == "" {
		ctx.Delete()
	} else {
		ctx.SetValue(v)
	}
	return nil
}

func TestEngineChangelogCarriesTheLatestValuePerKeyPerBatch(t *testing.T) {
	g := DefineGroup[string]("latest")
	Persist(g, codec.String())
	Input(g, "in", codec.String(), setOrDelete)
	e, _, _ := newTestEngine(t, g)
	if _, err := e.process(context.Background(), recs("a", "1", "b", "1", "a", "2", "c", "1", "a", "3", "c", "")); err != nil {
		t.Fatal(err)
	}
	cl := e.endBatch()
	if got := values(cl); !slices.Equal(got, []string{"a:3", "b:1", "c:"}) {
		t.Errorf("changelog = %q, want one record per key, latest value, in first-change order", got)
	}
	if len(cl) == 3 && cl[2].Value != nil {
		t.Errorf("deleted row c written as %q, want a tombstone (nil value)", cl[2].Value)
	}
	for _, r := range cl {
		if r.Topic != "latest-table" || r.Partition != 0 {
			t.Errorf("changelog record on %s/%d, want latest-table/0", r.Topic, r.Partition)
		}
	}
	if _, err := e.process(context.Background(), recs("b", "2")); err != nil {
		t.Fatal(err)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{"b:2"}) {
		t.Errorf("second batch's changelog = %q, want only what it changed", got)
	}
}

func TestEngineAppliedWritesExactlyThePendingRowsWithTheCheckpoint(t *testing.T) {
	g := DefineGroup[string]("apply")
	Persist(g, codec.String())
	Input(g, "in", codec.String(), func(ctx *Context[string], v string) error {
		ctx.SetValue(v)
		return nil
	})
	e, st, _ := newTestEngine(t, g)
	if _, err := e.process(context.Background(), recs("a", "1", "b", "1", "a", "2")); err != nil {
		t.Fatal(err)
	}
	e.endBatch()
	if len(st.changes) != 0 {
		t.Fatalf("store written before the changelog was acknowledged: %v", st.changes)
	}
	if _, err := e.process(context.Background(), recs("c", "1")); err != nil {
		t.Fatal(err)
	}
	if err := e.applied(17); err != nil {
		t.Fatal(err)
	}
	if len(st.changes) != 1 || st.offsets[0] != 17 {
		t.Fatalf("Apply calls %v at %v, want one at checkpoint 17", st.changes, st.offsets)
	}
	var got []string
	for _, c := range st.changes[0] {
		got = append(got, string(c.Key)+":"+string(c.Value))
	}
	if !slices.Equal(got, []string{"a:2", "b:1"}) {
		t.Errorf("applied %q, want the pending rows a:2 b:1 and not c, still dirty", got)
	}
	if off, _ := st.Offset(); off != 17 {
		t.Errorf("store checkpoint = %d, want 17", off)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{"c:1"}) {
		t.Errorf("next changelog = %q, want c:1", got)
	}
}

func TestEngineDiscardedRestoresTheCommittedView(t *testing.T) {
	g := counts()
	e, st, _ := newTestEngine(t, g, CacheRows(1))
	ctx := context.Background()
	if _, err := e.process(ctx, recs("a", "x")); err != nil {
		t.Fatal(err)
	}
	e.endBatch()
	if err := e.applied(1); err != nil {
		t.Fatal(err)
	}
	// Three rows through a cache of one: pinned rows move to the evicted
	// map, and must leave it too.
	if _, err := e.process(ctx, recs("a", "y", "b", "x", "c", "x")); err != nil {
		t.Fatal(err)
	}
	e.endBatch()
	if _, err := e.process(ctx, recs("d", "x")); err != nil {
		t.Fatal(err)
	}
	e.discarded()
	if m, _ := rowOf(t, e, "a"); fmt.Sprint(m) != "map[x:1]" {
		t.Errorf("row a = %v, want the committed map[x:1]", m)
	}
	for _, k := range []string{"b", "c", "d"} {
		if _, ok := rowOf(t, e, k); ok {
			t.Errorf("row %s exists after the discard", k)
		}
	}
	if got := e.effects(); len(got) != 0 {
		t.Errorf("effects after the discard = %q", values(got))
	}
	if got := e.endBatch(); len(got) != 0 {
		t.Errorf("changelog after the discard = %q", values(got))
	}
	if err := e.applied(5); err != nil {
		t.Fatal(err)
	}
	if len(st.changes) != 1 {
		t.Errorf("discarded rows reached the store: %v", st.changes[1:])
	}
}

func TestEngineChecksKeyPlacement(t *testing.T) {
	g := counts()
	key := "k"
	want := Murmur2.fn.Partition([]byte(key), 4)
	other := (want + 1) % 4
	misplaced := func() []*kgo.Record {
		rs := recs(key, "x")
		rs[0].Partition = other
		return rs
	}

	e, _, p := newTestEngine(t, g)
	p.placement.partitions = 4
	if _, err := e.process(context.Background(), misplaced()); err != nil {
		t.Fatalf("without StrictPartitioning a misplaced record is processed; got %v", err)
	}
	if got := values(e.effects()); len(got) != 1 || p.Stats().Misplaced != 1 {
		t.Errorf("effects %q, misplaced %d; want the record's emit, and it counted", got, p.Stats().Misplaced)
	}

	e, _, p = newTestEngine(t, g, StrictPartitioning(), OnError(DeadLetter("dead")))
	p.placement.partitions = 4
	if _, err := e.process(context.Background(), misplaced()); err != nil {
		t.Fatal(err)
	}
	out := e.effects()
	if len(out) != 1 || out[0].Topic != "dead" {
		t.Fatalf("effects = %q, want the dead letter alone", values(out))
	}
	for _, h := range out[0].Headers {
		if h.Key == HeaderErrorKind && string(h.Value) != "misplaced" {
			t.Errorf("error kind = %q, want misplaced", h.Value)
		}
	}
	if got := e.endBatch(); len(got) != 0 {
		t.Errorf("changelog = %q, want nothing from the misplaced record", values(got))
	}

	e, _, p = newTestEngine(t, g, StrictPartitioning())
	p.placement.partitions = 4
	var merr *MisplacedError
	if _, err := e.process(context.Background(), misplaced()); !errors.As(err, &merr) || merr.Want != want {
		t.Errorf("under Fail, error = %v, want a MisplacedError wanting partition %d", err, want)
	}
}

// refusing decodes strings but refuses "bad".
type refusing struct{ codec.Codec[string] }

func (c refusing) Decode(b []byte) (string, error) {
	if string(b) == "bad" {
		return "", errors.New("refusing bad")
	}
	return c.Codec.Decode(b)
}

// newBatchTestEngine returns the engine of partition 0 of a batch group
// that writes each record to its table and to out, and fails the batch if a
// value is "fail".
func newBatchTestEngine(t *testing.T, opts ...BatchProcessorOpt) (*engine[[]byte], *BatchProcessor[string, string]) {
	t.Helper()
	bg := DefineBatchGroup[string, string]("batches")
	BatchInput(bg, "in", codec.String(), refusing{codec.String()})
	tbl := BatchTable(bg, codec.String())
	out := BatchOutput(bg, "out", codec.String())
	HandleBatches(bg, func(ctx BatchContext, rs []Record[string, string], s Sender) error {
		for _, r := range rs {
			if err := tbl.Store(ctx).Put(ctx.Context(), r.Key, r.Value); err != nil {
				return err
			}
			if err := out.Send(s, r.Key, r.Value); err != nil {
				return err
			}
		}
		for _, r := range rs {
			if r.Value == "fail" {
				return errHandler
			}
		}
		return nil
	})
	bp, err := NewBatchProcessor(bg, append([]BatchProcessorOpt{Storage(memory.Builder())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var m taskMetrics
	m.init(bp.p.metrics, 0, bp.p.g.inputTopics())
	e := newEngine(bp.p.engineConfig(), enginePartition{partition: 0, table: memory.New(), metrics: &m})
	return e, bp
}

func processBatch(t *testing.T, e *engine[[]byte], rs []*kgo.Record) bool {
	t.Helper()
	c := e.newBatchCall()
	c.ctx = context.Background()
	handled, err := e.processBatch(c, rs)
	if err != nil {
		t.Fatal(err)
	}
	return handled
}

func TestEngineBatchFailureUndoesItsTableWritesAndDeadLettersEachRecord(t *testing.T) {
	e, bp := newBatchTestEngine(t, OnError(DeadLetter("dead")))
	if !processBatch(t, e, recs("a", "1")) {
		t.Fatal("first batch not handled")
	}
	if got := values(e.effects()); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("first batch's effects = %q, want what it sent", got)
	}
	e.endBatch()
	if err := e.applied(1); err != nil {
		t.Fatal(err)
	}
	if processBatch(t, e, recs("a", "2", "b", "fail")) {
		t.Fatal("failed batch reported handled")
	}
	out := e.effects()
	if len(out) != 2 || out[0].Topic != "dead" || out[1].Topic != "dead" || string(out[1].Key) != "b" {
		t.Fatalf("failed batch's effects = %q on %v, want a dead letter per record and nothing it sent", values(out), out)
	}
	if got := e.endBatch(); len(got) != 0 {
		t.Errorf("failed batch's changelog = %q, want its table writes undone", values(got))
	}
	if raw, _, _ := e.getRaw("a"); string(raw) != "1" {
		t.Errorf("row a = %q, want 1 from the batch before", raw)
	}
	if s := bp.Stats(); s.DeadLettered != 2 {
		t.Errorf("DeadLettered = %d, want 2", s.DeadLettered)
	}
}

func TestEngineBatchRecordThatDoesNotDecodeIsSkippedAlone(t *testing.T) {
	e, bp := newBatchTestEngine(t, OnError(Skip))
	if !processBatch(t, e, recs("a", "bad", "b", "2")) {
		t.Fatal("batch not handled")
	}
	if got := values(e.effects()); !slices.Equal(got, []string{"b:2"}) {
		t.Errorf("effects = %q, want what the handler sent for the record that decoded", got)
	}
	if got := values(e.endBatch()); !slices.Equal(got, []string{"b:2"}) {
		t.Errorf("changelog = %q, want b:2", got)
	}
	if s := bp.Stats(); s.Skipped != 1 {
		t.Errorf("Skipped = %d, want 1", s.Skipped)
	}
}

func TestEngineHeadersOfARecordStayAsTheyWereAfterTheNextRecords(t *testing.T) {
	g := DefineGroup[string]("headers")
	var got [][]Header
	Input(g, "in", codec.String(), func(ctx *Context[string], _ string) error {
		got = append(got, ctx.Headers())
		// A handler may append to what it got for an earlier record:
		// that must not reach the headers of the records after it.
		if n := len(got); n > 1 {
			_ = append(got[n-2], Header{Key: "added"})
		}
		return nil
	})
	e, _, _ := newTestEngine(t, g)
	rs := recs("a", "1", "b", "2", "c", "3")
	for i, r := range rs {
		for j := range i {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: fmt.Sprintf("h%d", j), Value: []byte(r.Key)})
		}
	}
	for range 50 { // past the room of one allocation
		got = got[:0]
		if _, err := e.process(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			var want []Header
			for _, h := range r.Headers {
				want = append(want, Header{Key: h.Key, Value: h.Value})
			}
			if fmt.Sprint(got[i]) != fmt.Sprint(want) {
				t.Fatalf("headers of record %d = %v, want %v", i, got[i], want)
			}
		}
	}
}

func TestEngineKeepsNoFetchBufferOfABatchItHasProcessedAndHandedOut(t *testing.T) {
	e, _, _ := newTestEngine(t, counts())
	// A fetched batch's records share one buffer, as franz-go's do.
	buf := []byte("axbyaz")
	rs := []*kgo.Record{
		{Topic: "in", Offset: 0, Key: buf[0:1], Value: buf[1:2]},
		{Topic: "in", Offset: 1, Key: buf[2:3], Value: buf[3:4]},
		{Topic: "in", Offset: 2, Key: buf[4:5], Value: buf[5:6]},
	}
	fetched := weak.Make(&buf[0])
	if _, err := e.process(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	out := e.effects()
	if len(out) != len(rs) {
		t.Fatalf("effects = %d records, want %d", len(out), len(rs))
	}
	clear(out) // as the task does once it has produced them
	_ = e.endBatch()
	if err := e.applied(int64(len(rs))); err != nil {
		t.Fatal(err)
	}
	// The effects are produced and let go; the next batch comes later.
	// An engine that kept the batch's last record would keep its fetch
	// alive, one per partition.
	buf, rs = nil, nil
	runtime.GC()
	if fetched.Value() != nil {
		t.Fatal("the buffer of a processed batch is still reachable from the engine")
	}
	runtime.KeepAlive(e)
}
