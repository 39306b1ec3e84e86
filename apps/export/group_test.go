package export

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

const (
	keyA = "stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411"
	keyB = "stats/{service:1006}/uinstance:alice/response_code:2XX/day:20160104"
)

// at is a time in the hour of keyA, 2016-01-04 11:45:00 plus s seconds.
func at(s float64) sluicetest.RecordOpt {
	return sluicetest.WithTimestamp(utc(2016, 1, 4, 11, 45, 0).Add(time.Duration(s * float64(time.Second))))
}

func send(t *testing.T, tt *sluicetest.Tester[Pending], key, value string, opts ...sluicetest.RecordOpt) {
	t.Helper()
	if err := tt.SendRaw(DefaultInput, key, []byte(value), opts...); err != nil {
		t.Fatal(err)
	}
}

func outputEvents(t *testing.T, tt *sluicetest.Tester[Pending], topic string) []Event {
	t.Helper()
	var evs []Event
	for _, r := range tt.Records(topic) {
		var ev Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if r.Key != ev.ID {
			t.Errorf("record key %q, event id %q", r.Key, ev.ID)
		}
		evs = append(evs, ev)
	}
	slices.SortFunc(evs, func(a, b Event) int { return strings.Compare(a.ID, b.ID) })
	return evs
}

func TestExportGroupSendsTheLatestValueOfEachKeyPerBucketWithTimeGenAtTheBucketEnd(t *testing.T) {
	g, err := DefineGroup(GroupConfig{Topic: "stats-events", Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g)
	if err != nil {
		t.Fatal(err)
	}
	// Bucket [11:45:00, 11:45:10): A goes 40, 41, 42, the 41 arriving
	// last but stamped before the 42; B goes 7.
	send(t, tt, keyA, "40", at(1))
	send(t, tt, keyA, "42", at(8))
	send(t, tt, keyB, "7", at(9))
	send(t, tt, keyA, "41", at(5))
	// Bucket [11:45:10, 11:45:20): A goes 43; an update within the grace
	// still lands in the first bucket.
	send(t, tt, keyA, "43", at(11))
	send(t, tt, keyB, "8", at(9.5))
	if evs := outputEvents(t, tt, "stats-events"); len(evs) != 0 {
		t.Fatalf("events before the bucket closed: %+v", evs)
	}
	// Stream time reaches the first bucket's end plus grace in every
	// partition: a record of each key moves its partition's.
	send(t, tt, keyA, "44", at(12))
	send(t, tt, keyB, "9", at(12))
	want := []Event{
		{Service: "1006", CInstance: "a60", Metric: "255", Value: 42, Period: "hour", Timestamp: "20160104 11:00", TimeGen: "20160104 11:45:10",
			ID: keyA + "@20160104T114510Z"},
		{Service: "1006", UInstance: "alice", ResponseCode: "2XX", Value: 8, Period: "day", Timestamp: "20160104 00:00", TimeGen: "20160104 11:45:10",
			ID: keyB + "@20160104T114510Z"},
	}
	if got := outputEvents(t, tt, "stats-events"); !slices.Equal(got, want) {
		t.Fatalf("events\n got %+v\nwant %+v", got, want)
	}
	raw := tt.Records("stats-events")
	var line string
	for _, r := range raw {
		if r.Key == want[0].ID {
			line = string(r.Value)
		}
	}
	if wantLine := `{"service":"1006","cinstance":"a60","metric":"255","value":42,"period":"hour","timestamp":"20160104 11:00","time_gen":"20160104 11:45:10","id":"` + want[0].ID + `"}`; line != wantLine {
		t.Errorf("event JSON\n got %s\nwant %s", line, wantLine)
	}
}

func TestExportGroupShipsTheLastBucketOnceUpdatesStopWithIdleAdvance(t *testing.T) {
	g, err := DefineGroup(GroupConfig{Topic: "stats-events"})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.Clock(utc(2016, 1, 4, 11, 45, 0)), sluicetest.ProcessorOptions(sluice.IdleAdvance(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	send(t, tt, keyA, "1", at(3))
	send(t, tt, keyA, "2", at(4))
	if err := tt.AdvanceClock(12 * time.Second); err != nil {
		t.Fatal(err)
	}
	evs := outputEvents(t, tt, "stats-events")
	if len(evs) != 1 || evs[0].Value != 2 || evs[0].TimeGen != "20160104 11:45:10" {
		t.Fatalf("events %+v, want the value 2 of the bucket ending 11:45:10", evs)
	}
}

func TestExportGroupSendsUnparsableKeysToTheErrorPolicyWithTheParsersReason(t *testing.T) {
	g, err := DefineGroup(GroupConfig{Topic: "stats-events"})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter("export-dead"))))
	if err != nil {
		t.Fatal(err)
	}
	bad := "stats/{service:1006}/metric:255/hour:2016010410"
	send(t, tt, bad, "5", at(1))
	send(t, tt, keyA, "not a number", at(1))
	dl := tt.DeadLetters()
	if len(dl) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dl))
	}
	_, want := ParseStatsKey(bad)
	if reason, _ := dl[0].Header(sluice.HeaderError); dl[0].Key != bad || !strings.Contains(reason, want.Error()) {
		t.Errorf("dead letter of %q says %q, want the parser's %q", dl[0].Key, reason, want)
	}
	if _, ok, err := tt.Row(bad); ok || err != nil {
		t.Errorf("the bad key has a row (%v)", err)
	}
}

func TestExportGroupCountsWeekAndEternityUpdatesWithoutExportingThem(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := DefineGroup(GroupConfig{Topic: "stats-events", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	send(t, tt, "stats/{service:1}/metric:2/week:20160104", "3", at(1))
	send(t, tt, "stats/{service:1}/metric:2/eternity", "4", at(1))
	send(t, tt, "stats/{service:1}/metric:2/eternity", "5", at(2))
	send(t, tt, keyA, "6", at(3))
	send(t, tt, keyA, "7", at(30))
	evs := outputEvents(t, tt, "stats-events")
	if len(evs) != 1 || evs[0].ID != keyA+"@20160104T114510Z" {
		t.Fatalf("events %+v, want only keyA's", evs)
	}
	for period, want := range map[string]float64{"week": 1, "eternity": 2} {
		if got := testutil.ToFloat64(metricOf(t, reg, "sluice_export_updates_skipped_total", period)); got != want {
			t.Errorf("%s skipped %v, want %v", period, got, want)
		}
	}
	if n := testutil.ToFloat64(metricOf(t, reg, "sluice_export_updates_total", "")); n != 2 {
		t.Errorf("updates taken %v, want 2", n)
	}
}

// metricOf finds the registered collector by name (and label value).
func metricOf(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				c := prometheus.NewGauge(prometheus.GaugeOpts{Name: "copy"})
				c.Set(v)
				return c
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return nil
}

// gateSink accepts calls only while open, and keeps the lines it took.
type gateSink struct {
	mu    sync.Mutex
	open  bool
	lines []string
}

func (s *gateSink) Put(_ context.Context, records []Record) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return nil, errors.New("closed for now")
	}
	for _, r := range records {
		for _, l := range strings.SplitAfter(string(r.Data), "\n") {
			if l != "" {
				s.lines = append(s.lines, l)
			}
		}
	}
	return nil, nil
}

func (s *gateSink) setOpen(v bool) {
	s.mu.Lock()
	s.open = v
	s.mu.Unlock()
}

func (s *gateSink) taken() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

func newSinkGroup(t *testing.T, sink Sink, limit int) (*sluicetest.Tester[Pending], *Exporter) {
	t.Helper()
	x, err := NewExporter(sink, ExporterConfig{PendingLimit: limit, BatchWait: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := DefineGroup(GroupConfig{Exporter: x, ResendAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	return tt, x
}

func TestExportGroupKeepsAnEventInItsPendingRowUntilTheSinkAcceptsIt(t *testing.T) {
	sink := &gateSink{}
	tt, x := newSinkGroup(t, sink, 1000)
	runExporter(t, x)
	send(t, tt, keyA, "1", at(1))
	send(t, tt, keyA, "2", at(12)) // closes [11:45:00, 11:45:10)
	p, ok, err := tt.Row(keyA)
	if err != nil || !ok || len(p.Buckets) != 1 || p.Buckets[0].Value != 1 || !p.Buckets[0].End.Equal(utc(2016, 1, 4, 11, 45, 10)) {
		t.Fatalf("row %+v, %v, %v: want the pending event of value 1", p, ok, err)
	}
	// The row is committed: a crash keeps it.
	tt.Crash()
	if p, ok, err = tt.Row(keyA); err != nil || !ok || len(p.Buckets) != 1 {
		t.Fatalf("row after a crash %+v, %v, %v", p, ok, err)
	}
	// The timer checks the row: not accepted yet, it stays.
	send(t, tt, keyA, "3", at(14))
	if _, ok, _ := tt.Row(keyA); !ok {
		t.Fatal("the pending row is gone before the sink accepted its event")
	}
	sink.setOpen(true)
	waitFor(t, 10*time.Second, "the sink to accept", func() bool { return x.Pending() == 0 })
	send(t, tt, keyA, "4", at(16)) // the timer clears the row
	if p, ok, err := tt.Row(keyA); ok || err != nil {
		t.Fatalf("row %+v, %v after the sink accepted its event", p, err)
	}
	if got := sink.taken(); len(got) != 1 || !strings.Contains(got[0], `"value":1,`) {
		t.Fatalf("sink took %q", got)
	}
}

func TestExportGroupHandsAPendingRowToANewExporterAfterARestart(t *testing.T) {
	// The first exporter never runs: its process dies with the event in
	// its memory only, and in the table.
	first := &gateSink{}
	tt, _ := newSinkGroup(t, first, 1000)
	send(t, tt, keyA, "1", at(1))
	send(t, tt, keyA, "2", at(12))
	raw, ok, err := tt.RawRow(keyA)
	if err != nil || !ok {
		t.Fatalf("no pending row: %v", err)
	}
	// A new process: a new exporter and group over the table's row. A
	// seeded row has no timer: the close of the key's next bucket sets it.
	second := &gateSink{open: true}
	tt2, x2 := newSinkGroup(t, second, 1000)
	runExporter(t, x2)
	p, err := PendingCodec().Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := tt2.SetRow(keyA, p); err != nil {
		t.Fatal(err)
	}
	send(t, tt2, keyA, "5", at(13))
	send(t, tt2, keyA, "6", at(21)) // closes [11:45:10, 11:45:20), sets the timer
	send(t, tt2, keyA, "7", at(23)) // the timer fires: the old event is unknown
	waitFor(t, 10*time.Second, "the new sink to take both events", func() bool { return len(second.taken()) == 2 })
	got := strings.Join(second.taken(), "")
	for _, id := range []string{keyA + "@20160104T114510Z", keyA + "@20160104T114520Z"} {
		if !strings.Contains(got, `"id":"`+id+`"`) {
			t.Errorf("sink took %q, want %s", got, id)
		}
	}
}

func TestExportGroupStopsTakingInputAtThePendingLimitAndResumesWhenTheSinkCatchesUp(t *testing.T) {
	reg := prometheus.NewRegistry()
	sink := &gateSink{}
	x, err := NewExporter(sink, ExporterConfig{PendingLimit: 2, BatchWait: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		MaxPause: time.Hour, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	g, err := DefineGroup(GroupConfig{Exporter: x})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	runExporter(t, x)
	send(t, tt, keyA, "1", at(1))
	send(t, tt, keyB, "1", at(2))
	// This update closes the bucket: two events pending, the limit.
	done := make(chan error, 1)
	go func() { done <- tt.SendRaw(DefaultInput, keyA, []byte("2"), at(11)) }()
	waitFor(t, 10*time.Second, "the pause", x.Paused)
	if v := testutil.ToFloat64(metricOf(t, reg, "sluice_export_paused", "")); v != 1 {
		t.Errorf("paused metric %v, want 1", v)
	}
	select {
	case err := <-done:
		t.Fatalf("the update was taken while paused (%v)", err)
	default:
	}
	sink.setOpen(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if x.Paused() {
		t.Error("still paused after the sink caught up")
	}
	if got := sink.taken(); len(got) != 2 {
		t.Fatalf("sink took %q, want the two events", got)
	}
}

func TestAPendingRowOfADayOfTenSecondBucketsFitsInAKafkaRecord(t *testing.T) {
	var p Pending
	end := utc(2016, 1, 4, 0, 0, 10)
	for range 24 * 60 * 6 {
		p.Buckets = append(p.Buckets, PendingBucket{End: end, Value: 1 << 40})
		end = end.Add(10 * time.Second)
	}
	raw, err := codec.JSON[Pending]().Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 1<<20 {
		t.Fatalf("a day of pending buckets is %d bytes, more than Kafka's default 1 MiB record", len(raw))
	}
	t.Logf("a day of pending buckets is %d bytes", len(raw))
}

func TestExporterResumesTheInputATenthBelowThePendingLimit(t *testing.T) {
	allow := make(chan struct{})
	sink := SinkFunc(func(ctx context.Context, _ []Record) ([]error, error) {
		select {
		case <-allow:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	x, err := NewExporter(sink, ExporterConfig{PendingLimit: 10, BatchWait: time.Millisecond,
		Limits: Limits{MaxRecordsPerCall: 1, MaxEventsPerRecord: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := x.offer(EventID(keyA, utc(2016, 1, 4, 0, 0, i)), testLine(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !x.Paused() {
		t.Fatal("not paused at the limit")
	}
	runExporter(t, x)
	allow <- struct{}{}
	waitFor(t, 10*time.Second, "one event accepted", func() bool { return x.Pending() == 9 })
	if !x.Paused() {
		t.Fatal("resumed one below the limit")
	}
	allow <- struct{}{}
	waitFor(t, 10*time.Second, "two events accepted", func() bool { return x.Pending() == 8 })
	if x.Paused() {
		t.Fatal("still paused a tenth below the limit")
	}
	close(allow)
}

func TestExportGroupChecksAPendingRowHalfAsOftenEachTimeItsEventsStillWait(t *testing.T) {
	sink := &gateSink{} // down for the whole test
	tt, x := newSinkGroup(t, sink, 1000)
	runExporter(t, x)
	send(t, tt, keyA, "1", at(1))
	// Updates of another key move stream time a second at a time from 12,
	// which closes keyA's bucket, to 50: checks at 13, 15, 19, 27 and 43,
	// each twice as far from the one before, up to 16 s.
	for s := 12; s <= 50; s++ {
		send(t, tt, keyB, strconv.Itoa(s), at(float64(s)))
	}
	p, ok, err := tt.Row(keyA)
	if err != nil || !ok {
		t.Fatalf("no pending row: %v", err)
	}
	if p.Rechecks != 5 || len(p.Buckets) != 1 {
		t.Fatalf("row %+v, want 5 checks of its one bucket", p)
	}
	// The sink comes back: the row is cleared at the next check, at 59.
	sink.setOpen(true)
	waitFor(t, 10*time.Second, "the sink to take the events", func() bool { return x.Pending() == 0 })
	send(t, tt, keyB, "59", at(59))
	if p, ok, err := tt.Row(keyA); ok || err != nil {
		t.Fatalf("row %+v (%v) after the sink took its event", p, err)
	}
}

func TestExportGroupTakesAnUpdateAfterMaxPauseSoThatAPausedPartitionDoesNotHoldUpARebalance(t *testing.T) {
	sink := &gateSink{} // down for the whole test
	x, err := NewExporter(sink, ExporterConfig{PendingLimit: 1, MaxPause: 20 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := DefineGroup(GroupConfig{Exporter: x})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	runExporter(t, x)
	send(t, tt, keyA, "1", at(1))
	send(t, tt, keyA, "2", at(11)) // closes the bucket: paused
	if !x.Paused() {
		t.Fatal("not paused at the limit")
	}
	// Each of these waits MaxPause, then is taken: Send returns.
	send(t, tt, keyA, "3", at(12))
	send(t, tt, keyA, "4", at(13))
	if !x.Paused() {
		t.Fatal("resumed while the sink is down")
	}
	if p, ok, _ := tt.Row(keyA); !ok || len(p.Buckets) != 1 {
		t.Fatalf("row %+v, want the one pending bucket", p)
	}
}

func TestExportGroupClearsAnAcceptedEventAtTheKeysNextBucketAndItsTimerClearsTheLast(t *testing.T) {
	sink := &gateSink{open: true}
	x, err := NewExporter(sink, ExporterConfig{BatchWait: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runExporter(t, x)
	g, err := DefineGroup(GroupConfig{Exporter: x}) // ResendAfter: twice the bucket, 20 s
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, sluicetest.Partitions(1))
	if err != nil {
		t.Fatal(err)
	}
	send(t, tt, keyA, "1", at(1))
	send(t, tt, keyA, "2", at(12)) // closes [11:45:00, 11:45:10)
	waitFor(t, 10*time.Second, "the sink to accept the first event", func() bool { return len(sink.taken()) == 1 })
	send(t, tt, keyB, "1", at(22)) // closes keyA's [11:45:10, 11:45:20)
	p, ok, err := tt.Row(keyA)
	if err != nil || !ok || len(p.Buckets) != 1 || p.Buckets[0].Value != 2 {
		t.Fatalf("row %+v, %v, %v: want only the event of value 2, the accepted one cleared by the close", p, ok, err)
	}
	waitFor(t, 10*time.Second, "the sink to accept the second event", func() bool { return len(sink.taken()) == 2 })
	// No more closes of keyA: its timer, set at the first close for 20 s
	// later, clears the row.
	send(t, tt, keyB, "2", at(33))
	if p, ok, err := tt.Row(keyA); ok || err != nil {
		t.Fatalf("row %+v (%v) after the sink took both events", p, err)
	}
}

func TestConfigCheckRefusesWhatRunWouldBeforeConnecting(t *testing.T) {
	sink := SinkFunc(func(context.Context, []Record) ([]error, error) { return nil, nil })
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no sink or topic", Config{}, "want either a sink or a topic"},
		{"both", Config{Sink: sink, Topic: "t"}, "want either a sink or a topic"},
		{"bucket of part seconds", Config{Topic: "t", Group: GroupConfig{Bucket: 1500 * time.Millisecond}}, "bucket 1.5s: want a whole number of seconds"},
		{"bucket under a second", Config{Topic: "t", Group: GroupConfig{Bucket: time.Millisecond}}, "bucket 1ms"},
		{"negative grace", Config{Topic: "t", Group: GroupConfig{Grace: -time.Second}}, "grace -1s"},
		{"limit out of range", Config{Sink: sink, Exporter: ExporterConfig{Limits: Limits{MaxRecordsPerCall: -1}}}, "exporter:"},
		{"input Kafka refuses", Config{Sink: sink, Group: GroupConfig{Input: "stats updates"}}, `topic name "stats updates"`},
		{"group name Kafka refuses", Config{Sink: sink, Group: GroupConfig{Name: "ex/port"}}, `group name "ex/port"`},
		{"topic Kafka refuses", Config{Topic: "stats events"}, `topic name "stats events"`},
		{"topic that is the input", Config{Topic: DefaultInput}, "already the group's input"},
	} {
		err := c.cfg.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check() = %v, want an error with %q", c.name, err, c.want)
		}
	}
	if err := (Config{Topic: "t"}).Check(); err != nil {
		t.Errorf("defaults: Check() = %v", err)
	}
	if err := (Config{Sink: sink, Group: GroupConfig{Bucket: 30 * time.Second, Grace: 5 * time.Second}}).Check(); err != nil {
		t.Errorf("a sink, 30s buckets, 5s grace: Check() = %v", err)
	}
}
