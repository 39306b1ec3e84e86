package sluice_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// fold runs msgs through agg as a window does, one point per message.
func fold[M, A any](agg sluice.Aggregator[M, A], msgs ...M) A {
	a := agg.Init()
	for i, m := range msgs {
		a = agg.Add(a, m, sluice.Point{Time: time.Unix(int64(i), 0), Offset: int64(i)})
	}
	return a
}

// codecRoundTrip encodes v with c, checks the bytes are wire when wire is
// not empty, and decodes them back.
func codecRoundTrip[A any](t *testing.T, c codec.Codec[A], v A, wire string) A {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	if wire != "" && string(b) != wire {
		t.Fatalf("encode %v: %q, want %q", v, b, wire)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return got
}

func TestCountAndSumFoldMergeAndRoundTripAsText(t *testing.T) {
	count := sluice.Count[string]()
	for _, tc := range []struct {
		msgs []string
		want int64
	}{{nil, 0}, {[]string{"a"}, 1}, {[]string{"a", "b", "c"}, 3}} {
		got := fold(count, tc.msgs...)
		if got != tc.want {
			t.Errorf("count of %q = %d, want %d", tc.msgs, got, tc.want)
		}
		if back := codecRoundTrip(t, count.Codec, got, ""); back != got {
			t.Errorf("count %d read back as %d", got, back)
		}
	}
	if got := count.Merge(fold(count, "a", "b"), fold(count, "c")); got != 3 {
		t.Errorf("merged count = %d, want 3", got)
	}

	ints := sluice.Sum(func(n int64) int64 { return n })
	for _, tc := range []struct {
		msgs []int64
		want int64
		wire string
	}{{nil, 0, "0"}, {[]int64{5}, 5, "5"}, {[]int64{5, -7, 40}, 38, "38"}} {
		got := fold(ints, tc.msgs...)
		if got != tc.want {
			t.Errorf("sum of %v = %d, want %d", tc.msgs, got, tc.want)
		}
		if back := codecRoundTrip(t, ints.Codec, got, tc.wire); back != got {
			t.Errorf("sum %d read back as %d", got, back)
		}
	}
	if got := ints.Merge(fold(ints, 1, 2), fold(ints, 3)); got != 6 {
		t.Errorf("merged int sum = %d, want 6", got)
	}

	floats := sluice.Sum(func(f float64) float64 { return f })
	for _, tc := range []struct {
		msgs []float64
		want float64
		wire string
	}{{nil, 0, "0"}, {[]float64{0.1, 0.2}, 0.30000000000000004, "0.30000000000000004"}, {[]float64{1e300, 1e300}, 2e300, "2e+300"}, {[]float64{math.Inf(1), 1}, math.Inf(1), "+Inf"}} {
		got := fold(floats, tc.msgs...)
		if got != tc.want {
			t.Errorf("sum of %v = %v, want %v", tc.msgs, got, tc.want)
		}
		if back := codecRoundTrip(t, floats.Codec, got, tc.wire); back != got {
			t.Errorf("sum %v read back as %v", got, back)
		}
	}

	// A type defined on int64 sums as one and keeps its type.
	type req struct{ took time.Duration }
	durations := sluice.Sum(func(r req) time.Duration { return r.took })
	got := fold(durations, req{time.Second}, req{500 * time.Millisecond})
	if back := codecRoundTrip(t, durations.Codec, got, "1500000000"); back != 1500*time.Millisecond {
		t.Errorf("duration sum read back as %v, want 1.5s", back)
	}
}

func TestMinAndMaxKeepTheExtremeAndSayWhenAWindowHasNone(t *testing.T) {
	id := func(f float64) float64 { return f }
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		agg      sluice.Aggregator[float64, sluice.Extremum[float64]]
		msgs     []float64
		want     sluice.Extremum[float64]
		wire     string
		jsonText string
	}{
		{"min of nothing", sluice.Min(id), nil, sluice.Extremum[float64]{}, "null", "null"},
		{"max of nothing", sluice.Max(id), nil, sluice.Extremum[float64]{}, "null", "null"},
		{"min", sluice.Min(id), []float64{3, -2.5, 7}, sluice.Extremum[float64]{Value: -2.5, Set: true}, "-2.5", "-2.5"},
		{"max", sluice.Max(id), []float64{3, -2.5, 7}, sluice.Extremum[float64]{Value: 7, Set: true}, "7", "7"},
		{"min ignores NaN", sluice.Min(id), []float64{nan, 4, nan, 2}, sluice.Extremum[float64]{Value: 2, Set: true}, "2", "2"},
		{"max of NaN only", sluice.Max(id), []float64{nan, nan}, sluice.Extremum[float64]{}, "null", "null"},
	} {
		got := fold(tc.agg, tc.msgs...)
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
		if back := codecRoundTrip(t, tc.agg.Codec, got, tc.wire); back != got {
			t.Errorf("%s: %+v read back as %+v", tc.name, got, back)
		}
		if j, err := json.Marshal(got); err != nil || string(j) != tc.jsonText {
			t.Errorf("%s: json %s, %v; want %s", tc.name, j, err, tc.jsonText)
		}
	}

	ints := sluice.Min(func(n int64) int64 { return n })
	some, none := fold(ints, 9, 4), fold(ints)
	for _, tc := range []struct {
		a, b sluice.Extremum[int64]
		want int64
	}{{some, none, 4}, {none, some, 4}, {some, fold(ints, 5, 1), 1}} {
		if got := ints.Merge(tc.a, tc.b); !got.Set || got.Value != tc.want {
			t.Errorf("merge %+v %+v = %+v, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	if got := ints.Merge(none, none); got.Set {
		t.Errorf("merge of two empty windows is %+v, want not set", got)
	}
	if _, err := ints.Codec.Decode([]byte("four")); err == nil || !strings.Contains(err.Error(), `"four" is not a decimal integer`) {
		t.Errorf("decode of a bad min: %v", err)
	}
}

func TestLatestValueKeepsTheLatestRecordTimeWithTiesToTheHigherOffset(t *testing.T) {
	agg := sluice.LatestValue(codec.String())
	at := func(sec, off int64) sluice.Point { return sluice.Point{Time: time.Unix(sec, 0), Offset: off} }
	type rec struct {
		v string
		p sluice.Point
	}
	for _, tc := range []struct {
		name string
		recs []rec
		want string
	}{
		{"in order", []rec{{"a", at(1, 0)}, {"b", at(2, 1)}}, "b"},
		{"older record arrives later, within grace", []rec{{"new", at(5, 0)}, {"old", at(3, 1)}}, "new"},
		{"same time: the higher offset", []rec{{"first", at(4, 7)}, {"second", at(4, 8)}}, "second"},
		{"same time, lower offset arrives later", []rec{{"high", at(4, 8)}, {"low", at(4, 7)}}, "high"},
	} {
		a := agg.Init()
		if a.Set {
			t.Fatalf("an empty window has a latest value: %+v", a)
		}
		for _, r := range tc.recs {
			a = agg.Add(a, r.v, r.p)
		}
		if !a.Set || a.Value != tc.want {
			t.Errorf("%s: %+v, want %q", tc.name, a, tc.want)
		}
		back := codecRoundTrip(t, agg.Codec, a, "")
		if back.Value != a.Value || !back.Point.Time.Equal(a.Point.Time) || back.Point.Offset != a.Point.Offset || !back.Set {
			t.Errorf("%s: %+v read back as %+v", tc.name, a, back)
		}
	}

	older := agg.Add(agg.Init(), "older", at(10, 50))
	newer := agg.Add(agg.Init(), "newer", at(11, 2))
	for _, pair := range [][2]sluice.Timestamped[string]{{older, newer}, {newer, older}, {agg.Init(), newer}, {newer, agg.Init()}} {
		if got := agg.Merge(pair[0], pair[1]); got.Value != "newer" {
			t.Errorf("merge of %q and %q kept %q, want the later", pair[0].Value, pair[1].Value, got.Value)
		}
	}
	if back := codecRoundTrip(t, agg.Codec, agg.Init(), "\x00"); back.Set {
		t.Errorf("an empty latest value read back as %+v", back)
	}
	for _, bad := range []string{"", "\x01short", "\x02" + strings.Repeat("x", 20)} {
		if _, err := agg.Codec.Decode([]byte(bad)); err == nil || !strings.Contains(err.Error(), "not a latest value") {
			t.Errorf("decode of %q: %v", bad, err)
		}
	}
	j, err := json.Marshal(newer)
	if err != nil || string(j) != `{"value":"newer","time":"1970-01-01T00:00:11Z","offset":2}` {
		t.Errorf("json of a latest value: %s, %v", j, err)
	}
}

// exactQuantiles are the values the sketch's guarantee refers to: those of
// rank ⌊q·(n-1)⌋ and ⌈q·(n-1)⌉ in sorted.
func exactQuantiles(sorted []float64, q float64) (lo, hi float64) {
	r := q * float64(len(sorted)-1)
	return sorted[int(math.Floor(r))], sorted[int(math.Ceil(r))]
}

// withinAccuracy reports whether got is within accuracy of want.
func withinAccuracy(got, want, accuracy float64) bool {
	// 1e-12 absorbs the rounding of the sketch's logarithms.
	return math.Abs(got-want) <= accuracy*math.Abs(want)*(1+1e-12)
}

var testQuantiles = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// sample returns n values of a heavy-tailed distribution, latencies in
// milliseconds, with some zeros and negative values so that every part of
// the sketch is used.
func sample(r *rand.Rand, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		switch {
		case i%97 == 0:
			out[i] = 0
		case i%31 == 0:
			out[i] = -math.Exp(r.NormFloat64() * 2)
		default:
			out[i] = math.Exp(3 + r.NormFloat64()*1.5)
		}
	}
	return out
}

// checkAccuracy fails unless every test quantile of s lies within
// accuracy of the exact quantile of values.
func checkAccuracy(t *testing.T, what string, s *sluice.QuantileSketch, values []float64, accuracy float64) {
	t.Helper()
	sorted := slices.Sorted(slices.Values(values))
	if s.Count() != int64(len(values)) {
		t.Errorf("%s: count %d, want %d", what, s.Count(), len(values))
	}
	for _, q := range testQuantiles {
		got, err := s.Quantile(q)
		if err != nil {
			t.Fatalf("%s: quantile %v: %v", what, q, err)
		}
		lo, hi := exactQuantiles(sorted, q)
		if !withinAccuracy(got, lo, accuracy) && !withinAccuracy(got, hi, accuracy) {
			t.Errorf("%s: q%v = %v, exact %v (or the next, %v): off by more than %.2f%%", what, q, got, lo, hi, 100*accuracy)
		}
	}
}

func quantilesOf(t testing.TB, accuracy float64) sluice.Aggregator[float64, *sluice.QuantileSketch] {
	t.Helper()
	agg, err := sluice.Quantiles(accuracy, func(f float64) float64 { return f })
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

func TestQuantilesStayWithinTheirRelativeAccuracyOfTheExactQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, accuracy := range []float64{0.01, 0.05} {
		agg := quantilesOf(t, accuracy)
		values := sample(r, 20000)
		s := fold(agg, values...)
		checkAccuracy(t, "sketch", s, values, accuracy)
		checkAccuracy(t, "sketch read back", codecRoundTrip(t, agg.Codec, s, ""), values, accuracy)
		if math.Abs(s.RelativeAccuracy()-accuracy) > 1e-9 {
			t.Errorf("relative accuracy %v, want %v", s.RelativeAccuracy(), accuracy)
		}
	}
}

func TestMergedQuantileSketchesAnswerAsTheSketchOfTheUnion(t *testing.T) {
	const accuracy = 0.01
	agg := quantilesOf(t, accuracy)
	r := rand.New(rand.NewPCG(3, 4))
	a, b := sample(r, 7000), sample(r, 3000)
	for i := range b {
		b[i] *= 10 // the second session's values lie higher
	}
	union := append(slices.Clone(a), b...)
	// As the engine does: each session's sketch is read back from the
	// store before the two merge.
	merged := agg.Merge(codecRoundTrip(t, agg.Codec, fold(agg, a...), ""), codecRoundTrip(t, agg.Codec, fold(agg, b...), ""))
	checkAccuracy(t, "merged sketch", merged, union, accuracy)
	whole := fold(agg, union...)
	for _, q := range testQuantiles {
		m, _ := merged.Quantile(q)
		w, _ := whole.Quantile(q)
		if math.Abs(m-w) > accuracy*math.Abs(w) {
			t.Errorf("q%v: merged %v, sketch of the union %v", q, m, w)
		}
	}

	// A sketch of another accuracy, written before the aggregation
	// changed, still merges: every value is kept.
	coarse := fold(quantilesOf(t, 0.05), b...)
	mixed := agg.Merge(fold(agg, a...), coarse)
	if mixed.Count() != int64(len(union)) {
		t.Errorf("merge across accuracies kept %d values, want %d", mixed.Count(), len(union))
	}
	checkAccuracy(t, "merge across accuracies", mixed, union, accuracy+0.05+accuracy*0.05)
}

func TestQuantileSketchCountsWhatItCannotHoldAndRefusesBadInput(t *testing.T) {
	agg := quantilesOf(t, 0.02)
	s := fold(agg, 1, math.NaN(), 2, math.Inf(1), 3)
	if s.Count() != 3 || s.Untracked() != 2 {
		t.Errorf("count %d untracked %d, want 3 and 2", s.Count(), s.Untracked())
	}
	back := codecRoundTrip(t, agg.Codec, s, "")
	if back.Count() != 3 || back.Untracked() != 2 {
		t.Errorf("read back: count %d untracked %d, want 3 and 2", back.Count(), back.Untracked())
	}
	if merged := agg.Merge(back, fold(agg, math.NaN(), 4)); merged.Count() != 4 || merged.Untracked() != 3 {
		t.Errorf("merged: count %d untracked %d, want 4 and 3", merged.Count(), merged.Untracked())
	}

	empty := codecRoundTrip(t, agg.Codec, agg.Init(), "")
	if _, err := empty.Quantile(0.5); err == nil || !strings.Contains(err.Error(), "empty sketch") {
		t.Errorf("quantile of an empty sketch: %v", err)
	}
	for _, q := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := s.Quantile(q); err == nil || !strings.Contains(err.Error(), "must be between 0 and 1") {
			t.Errorf("quantile %v: %v", q, err)
		}
	}
	for _, accuracy := range []float64{0, -1, 1, 2, math.NaN()} {
		if _, err := sluice.Quantiles(accuracy, func(f float64) float64 { return f }); err == nil || !strings.Contains(err.Error(), "must be between 0 and 1") {
			t.Errorf("accuracy %v: %v", accuracy, err)
		}
	}
	for _, bad := range []string{"", "\x02abc", "\x01", "\x01\x00\xff\xff"} {
		if _, err := agg.Codec.Decode([]byte(bad)); err == nil || !strings.Contains(err.Error(), "quantile sketch") {
			t.Errorf("decode of %q: %v", bad, err)
		}
	}

	j, err := json.Marshal(fold(agg, 10, 20, 30))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]float64
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatalf("json %s: %v", j, err)
	}
	if out["count"] != 3 || math.Abs(out["p50"]-20) > 0.02*20 || math.Abs(out["max"]-30) > 0.02*30 {
		t.Errorf("json of a sketch: %s", j)
	}
	if j, _ := json.Marshal(agg.Init()); string(j) != `{"count":0,"untracked":0}` {
		t.Errorf("json of an empty sketch: %s", j)
	}
}

// A window's latency sketch, folded as the engine folds a window's
// records, answers any quantile within its relative accuracy.
func ExampleQuantiles() {
	latency, err := sluice.Quantiles(0.01, func(ms float64) float64 { return ms })
	if err != nil {
		fmt.Println(err)
		return
	}
	s := latency.Init()
	for ms := 1; ms <= 1000; ms++ {
		s = latency.Add(s, float64(ms), sluice.Point{})
	}
	p99, _ := s.Quantile(0.99)
	fmt.Printf("%d values, p99 within 1%% of 990: %v\n", s.Count(), math.Abs(p99-990) <= 0.01*990)
	// Output: 1000 values, p99 within 1% of 990: true
}

// BenchmarkQuantilesAdd measures the DDSketch aggregator per record: "add"
// folds a record into a window's sketch; "add+codec" also decodes the
// window's row before and encodes it after, as the engine does for the
// first record of a batch that folds into a window; "add+encode" decodes
// the row once for 100 records and encodes it after each, as the engine
// does for a batch of 100 records of one window, whose sketch it keeps
// decoded between them.
func BenchmarkQuantilesAdd(b *testing.B) {
	agg := quantilesOf(b, 0.01)
	values := sample(rand.New(rand.NewPCG(5, 6)), 1<<16)
	b.Run("add", func(b *testing.B) {
		s := agg.Init()
		p := sluice.Point{}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			s = agg.Add(s, values[i&(len(values)-1)], p)
		}
	})
	b.Run("add+codec", func(b *testing.B) {
		// A window row that already holds 1000 values, read, changed by
		// one record and written back each time.
		row, err := agg.Codec.Encode(fold(agg, values[:1000]...))
		if err != nil {
			b.Fatal(err)
		}
		p := sluice.Point{}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			s, err := agg.Codec.Decode(row)
			if err != nil {
				b.Fatal(err)
			}
			s = agg.Add(s, values[i&(len(values)-1)], p)
			if _, err := agg.Codec.Encode(s); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(row)), "bytes/row")
	})
	b.Run("add+encode", func(b *testing.B) {
		// The same row, decoded once for 100 records of a batch.
		row, err := agg.Codec.Encode(fold(agg, values[:1000]...))
		if err != nil {
			b.Fatal(err)
		}
		var s *sluice.QuantileSketch
		p := sluice.Point{}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%100 == 0 {
				if s, err = agg.Codec.Decode(row); err != nil {
					b.Fatal(err)
				}
			}
			s = agg.Add(s, values[i&(len(values)-1)], p)
			if _, err := agg.Codec.Encode(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A ready-made aggregator given no value function (or no codec) is refused
// where the group is defined, not at its first record.
func TestReadyMadeAggregatorsWithoutTheirFunctionAreRefusedAtDefinition(t *testing.T) {
	g := sluice.DefineGroup[string]("w")
	sluice.Input(g, "in", codec.String(), func(*sluice.Context[string], string) error { return nil })
	w := sluice.Sessions(time.Second)
	sluice.Aggregate(g, "sum", w, sluice.Sum[string, int64](nil), func(*sluice.Context[string], sluice.WindowResult[int64]) error { return nil })
	sluice.Aggregate(g, "min", w, sluice.Min[string, float64](nil), func(*sluice.Context[string], sluice.WindowResult[sluice.Extremum[float64]]) error { return nil })
	sluice.Aggregate(g, "max", w, sluice.Max[string, int64](nil), func(*sluice.Context[string], sluice.WindowResult[sluice.Extremum[int64]]) error { return nil })
	sluice.Aggregate(g, "latest", w, sluice.LatestValue[string](nil), func(*sluice.Context[string], sluice.WindowResult[sluice.Timestamped[string]]) error { return nil })
	err := g.Validate()
	if err == nil {
		t.Fatal("the group validated")
	}
	for _, want := range []string{
		`window "sum": the aggregator needs Init, Add and Codec: Add is nil`,
		`window "min": the aggregator needs Init, Add and Codec: Add is nil`,
		`window "max": the aggregator needs Init, Add and Codec: Add is nil`,
		`window "latest": the aggregator needs Init, Add and Codec: Codec is nil`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
	if _, err := sluice.Quantiles[string](0.01, nil); err == nil || !strings.Contains(err.Error(), "value function is nil") {
		t.Errorf("quantiles of a nil value function: %v", err)
	}
}
