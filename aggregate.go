package sluice

// The ready-made aggregators of windowed aggregations. Each carries the
// codec its aggregate is kept with in the group's store and changelog; the
// encodings are text where the aggregate is a number, so that kcat and
// other clients can read a window table, and compact binary where it is a
// record or a sketch.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	ddstore "github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/jsonvalue"
)

// Number is the type set of the values Sum, Min and Max fold: 64-bit
// integers and floats, and the types defined on them, such as
// time.Duration.
type Number interface {
	~int64 | ~float64
}

// Count returns an aggregator that counts a window's records. Its
// aggregate is encoded as decimal text, as codec.Int64 writes it.
func Count[M any]() Aggregator[M, int64] {
	return Aggregator[M, int64]{
		Init:  func() int64 { return 0 },
		Add:   func(n int64, _ M, _ Point) int64 { return n + 1 },
		Merge: func(a, b int64) int64 { return a + b },
		Codec: codec.Int64(),
	}
}

// Sum returns an aggregator that adds up value(msg) over a window's
// records; the sum of an empty window is 0. Integer sums wrap around on
// overflow as Go's int64 does; a NaN among float values makes the sum NaN.
// The aggregate is encoded as decimal text (floats in the shortest form
// that reads back exactly, "NaN" and "+Inf" included). With a nil value
// the aggregator has no Add, and Aggregate refuses it.
func Sum[M any, N Number](value func(M) N) Aggregator[M, N] {
	agg := Aggregator[M, N]{
		Init:  func() N { return 0 },
		Merge: func(a, b N) N { return a + b },
		Codec: numberCodec[N]{float: isFloat[N]()},
	}
	if value != nil {
		agg.Add = func(sum N, msg M, _ Point) N { return sum + value(msg) }
	}
	return agg
}

// Extremum is the aggregate of Min and Max: the least or greatest value of
// a window, and whether there is one. Set is false for a window that has
// no value to compare, which an empty window of Min has no honest number
// for; NaN values are ignored, so a window of NaNs only is not Set either.
// It is encoded as decimal text, or as "null" when not Set, which is also
// its JSON, but for an infinite float value, whose JSON is the string
// "+Inf" or "-Inf".
type Extremum[N Number] struct {
	Value N
	Set   bool
}

// MarshalJSON writes the value as a JSON number, or the string "+Inf" or
// "-Inf" for an infinite float, or null when it is not Set.
func (e Extremum[N]) MarshalJSON() ([]byte, error) {
	if !e.Set {
		return []byte("null"), nil
	}
	return jsonvalue.Marshal(e.Value)
}

// Min returns an aggregator that keeps the least value(msg) of a window's
// records. With a nil value the aggregator has no Add, and Aggregate
// refuses it.
func Min[M any, N Number](value func(M) N) Aggregator[M, Extremum[N]] {
	return extremum(value, func(a, b N) bool { return a < b })
}

// Max returns an aggregator that keeps the greatest value(msg) of a
// window's records. With a nil value the aggregator has no Add, and
// Aggregate refuses it.
func Max[M any, N Number](value func(M) N) Aggregator[M, Extremum[N]] {
	return extremum(value, func(a, b N) bool { return a > b })
}

// extremum builds Min and Max: better reports whether a should replace b.
func extremum[M any, N Number](value func(M) N, better func(a, b N) bool) Aggregator[M, Extremum[N]] {
	keep := func(a, b Extremum[N]) Extremum[N] {
		if !b.Set || (a.Set && !better(b.Value, a.Value)) {
			return a
		}
		return b
	}
	agg := Aggregator[M, Extremum[N]]{
		Init:  func() Extremum[N] { return Extremum[N]{} },
		Merge: keep,
		Codec: extremumCodec[N]{numberCodec[N]{float: isFloat[N]()}},
	}
	if value != nil {
		agg.Add = func(agg Extremum[N], msg M, _ Point) Extremum[N] {
			v := value(msg)
			if math.IsNaN(float64(v)) {
				return agg
			}
			return keep(agg, Extremum[N]{Value: v, Set: true})
		}
	}
	return agg
}

// Timestamped is the aggregate of LatestValue: the value of the record with
// the latest time in a window, where that record stands, and whether there
// is one (Set is false for an empty window).
type Timestamped[M any] struct {
	Value M
	Point Point
	Set   bool
}

// MarshalJSON writes {"value": …, "time": …, "offset": …}, with the value
// as encoding/json writes it (a NaN or infinite float as the string "NaN",
// "+Inf" or "-Inf") and the time in RFC 3339, or null when it is not Set.
func (l Timestamped[M]) MarshalJSON() ([]byte, error) {
	if !l.Set {
		return []byte("null"), nil
	}
	return jsonvalue.Marshal(struct {
		Value  M         `json:"value"`
		Time   time.Time `json:"time"`
		Offset int64     `json:"offset"`
	}{l.Value, l.Point.Time.UTC(), l.Point.Offset})
}

// LatestValue returns an aggregator that keeps the value of the record
// with the latest time in a window, a tie broken by the higher offset. A
// record that arrives out of order within the grace period therefore does
// not replace a newer value, and Merge keeps the later of two. (It is not
// named Latest, which is the StartOffset.) The aggregate is encoded as a
// flag byte (0: not Set), the time in Unix nanoseconds and the offset as
// 8-byte big-endian integers, and the value encoded with c. With a nil c
// the aggregator has no Codec, and Aggregate refuses it.
func LatestValue[M any](c codec.Codec[M]) Aggregator[M, Timestamped[M]] {
	merge := func(a, b Timestamped[M]) Timestamped[M] {
		if !b.Set {
			return a
		}
		if !a.Set || later(b.Point, a.Point) {
			return b
		}
		return a
	}
	agg := Aggregator[M, Timestamped[M]]{
		Init: func() Timestamped[M] { return Timestamped[M]{} },
		Add: func(agg Timestamped[M], msg M, p Point) Timestamped[M] {
			return merge(agg, Timestamped[M]{Value: msg, Point: p, Set: true})
		},
		Merge: merge,
	}
	if c != nil {
		agg.Codec = latestCodec[M]{c}
	}
	return agg
}

// later reports whether a stands after b in event time.
func later(a, b Point) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	return a.Offset > b.Offset
}

// QuantileSketch is the aggregate of Quantiles: a DDSketch of a window's
// values, from which any quantile can be read within the sketch's
// relative accuracy.
type QuantileSketch struct {
	sketch    *ddsketch.DDSketch
	untracked int64
}

// Quantile returns the value at quantile q, between 0 and 1: within the
// sketch's relative accuracy of the value of rank q·(n-1) among the n
// values, sorted (rounded down, or up where the values are negative, as
// DDSketch ranks them). It fails for an empty sketch and for q outside
// [0, 1].
func (s *QuantileSketch) Quantile(q float64) (float64, error) {
	if !(q >= 0 && q <= 1) {
		return math.NaN(), fmt.Errorf("quantile %v: must be between 0 and 1", q)
	}
	if s == nil || s.sketch.IsEmpty() {
		return math.NaN(), errors.New("quantile of an empty sketch")
	}
	v, err := s.sketch.GetValueAtQuantile(q)
	if err != nil {
		return math.NaN(), fmt.Errorf("quantile %v: %w", q, err)
	}
	return v, nil
}

// Count returns the number of values the sketch holds.
func (s *QuantileSketch) Count() int64 {
	if s == nil {
		return 0
	}
	return int64(math.Round(s.sketch.GetCount()))
}

// Untracked returns the number of values the sketch could not hold: NaN,
// infinities and magnitudes beyond what its index covers (about 1e±308).
// They are counted rather than dropped without trace.
func (s *QuantileSketch) Untracked() int64 {
	if s == nil {
		return 0
	}
	return s.untracked
}

// RelativeAccuracy returns the sketch's relative accuracy.
func (s *QuantileSketch) RelativeAccuracy() float64 {
	if s == nil {
		return 0
	}
	return s.sketch.RelativeAccuracy()
}

// MarshalJSON writes the count, the untracked count and, when the sketch
// is not empty, its minimum, p50, p90, p95, p99 and maximum, as in
// {"count":3,"untracked":0,"min":1,"p50":2,…}.
func (s *QuantileSketch) MarshalJSON() ([]byte, error) {
	out := struct {
		Count     int64    `json:"count"`
		Untracked int64    `json:"untracked"`
		Min       *float64 `json:"min,omitempty"`
		P50       *float64 `json:"p50,omitempty"`
		P90       *float64 `json:"p90,omitempty"`
		P95       *float64 `json:"p95,omitempty"`
		P99       *float64 `json:"p99,omitempty"`
		Max       *float64 `json:"max,omitempty"`
	}{Count: s.Count(), Untracked: s.Untracked()}
	if s != nil && !s.sketch.IsEmpty() {
		for _, f := range []struct {
			q   float64
			dst **float64
		}{{0, &out.Min}, {0.5, &out.P50}, {0.9, &out.P90}, {0.95, &out.P95}, {0.99, &out.P99}, {1, &out.Max}} {
			v, err := s.sketch.GetValueAtQuantile(f.q)
			if err != nil {
				return nil, fmt.Errorf("quantile sketch: %w", err)
			}
			*f.dst = &v
		}
	}
	return json.Marshal(out)
}

// newSketchStore holds a sketch's bins: in pages of contiguous bins, only
// where values fall, so a stray value far from the others costs a page, not
// the bins between. It never collapses bins, so the accuracy holds across
// the whole range, and it decodes several times faster than the dense
// stores, which matters as a window's sketch is decoded for every batch
// that changes it.
var newSketchStore = ddstore.BufferedPaginatedStoreConstructor

// Quantiles returns an aggregator that keeps a DDSketch of value(msg) over
// a window's records, so that any quantile of the window can be read from
// the aggregate within relativeAccuracy (0.01: within 1% of the true
// value). Sketches merge exactly, so session windows lose nothing when
// two merge. The aggregate is encoded as a format byte (1), the untracked
// count as a uvarint, and the sketch in DDSketch's own binary encoding,
// with its index mapping. It fails when relativeAccuracy is not between 0
// and 1, exclusive, or value is nil.
func Quantiles[M any](relativeAccuracy float64, value func(M) float64) (Aggregator[M, *QuantileSketch], error) {
	if value == nil {
		return Aggregator[M, *QuantileSketch]{}, errors.New("quantiles: the value function is nil")
	}
	if !(relativeAccuracy > 0 && relativeAccuracy < 1) {
		// NaN too, which the mapping's own check lets through.
		return Aggregator[M, *QuantileSketch]{}, fmt.Errorf("quantiles: relative accuracy %v must be between 0 and 1", relativeAccuracy)
	}
	m, err := mapping.NewDefaultMapping(relativeAccuracy)
	if err != nil {
		return Aggregator[M, *QuantileSketch]{}, fmt.Errorf("quantiles: relative accuracy %v must be between 0 and 1: %w", relativeAccuracy, err)
	}
	init := func() *QuantileSketch {
		return &QuantileSketch{sketch: ddsketch.NewDDSketch(m, newSketchStore(), newSketchStore())}
	}
	return Aggregator[M, *QuantileSketch]{
		Init: init,
		Add: func(s *QuantileSketch, msg M, _ Point) *QuantileSketch {
			if s == nil {
				s = init()
			}
			if s.sketch.Add(value(msg)) != nil {
				s.untracked++
			}
			return s
		},
		Merge: func(a, b *QuantileSketch) *QuantileSketch {
			switch {
			case b == nil:
				return a
			case a == nil:
				return b
			}
			if a.sketch.MergeWith(b.sketch) != nil {
				// Sketches of another accuracy (the aggregation changed
				// since b was written): add b's bins as values, which
				// keeps every count and costs b's accuracy only.
				b.sketch.ForEach(func(v, n float64) bool {
					if a.sketch.AddWithCount(v, n) != nil {
						a.untracked += int64(n)
					}
					return false
				})
			}
			a.untracked += b.untracked
			return a
		},
		Codec: sketchCodec{},
	}, nil
}

// numberCodec writes integers and floats as decimal text.
type numberCodec[N Number] struct{ float bool }

func isFloat[N Number]() bool { return reflect.TypeFor[N]().Kind() == reflect.Float64 }

func (c numberCodec[N]) Encode(v N) ([]byte, error) {
	if c.float {
		return strconv.AppendFloat(nil, float64(v), 'g', -1, 64), nil
	}
	return strconv.AppendInt(nil, int64(v), 10), nil
}

func (c numberCodec[N]) Decode(b []byte) (N, error) {
	if c.float {
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return 0, fmt.Errorf("number codec: %q is not a decimal number", truncateBytes(b))
		}
		return N(f), nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number codec: %q is not a decimal integer", truncateBytes(b))
	}
	return N(n), nil
}

// extremumCodec writes an Extremum as its number, or "null".
type extremumCodec[N Number] struct{ num numberCodec[N] }

func (c extremumCodec[N]) Encode(e Extremum[N]) ([]byte, error) {
	if !e.Set {
		return []byte("null"), nil
	}
	return c.num.Encode(e.Value)
}

func (c extremumCodec[N]) Decode(b []byte) (Extremum[N], error) {
	if string(b) == "null" {
		return Extremum[N]{}, nil
	}
	v, err := c.num.Decode(b)
	if err != nil {
		return Extremum[N]{}, fmt.Errorf("extremum: %w", err)
	}
	return Extremum[N]{Value: v, Set: true}, nil
}

// latestCodec writes a Timestamped as a flag byte, the point and the
// value.
type latestCodec[M any] struct{ value codec.Codec[M] }

const latestHeader = 1 + 8 + 8

func (c latestCodec[M]) Encode(l Timestamped[M]) ([]byte, error) {
	if !l.Set {
		return []byte{0}, nil
	}
	v, err := c.value.Encode(l.Value)
	if err != nil {
		return nil, fmt.Errorf("latest: encode value: %w", err)
	}
	b := make([]byte, 1, latestHeader+len(v))
	b[0] = 1
	b = binary.BigEndian.AppendUint64(b, uint64(l.Point.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(l.Point.Offset))
	return append(b, v...), nil
}

func (c latestCodec[M]) Decode(b []byte) (Timestamped[M], error) {
	switch {
	case len(b) == 1 && b[0] == 0:
		return Timestamped[M]{}, nil
	case len(b) < latestHeader || b[0] != 1:
		return Timestamped[M]{}, fmt.Errorf("latest: %d bytes beginning %q are not a latest value", len(b), truncateBytes(b))
	}
	v, err := c.value.Decode(b[latestHeader:])
	if err != nil {
		return Timestamped[M]{}, fmt.Errorf("latest: decode value: %w", err)
	}
	return Timestamped[M]{
		Value: v,
		Point: Point{
			Time:   time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))),
			Offset: int64(binary.BigEndian.Uint64(b[9:17])),
		},
		Set: true,
	}, nil
}

// sketchCodec writes a QuantileSketch as a format byte, the untracked
// count and the DDSketch encoding.
type sketchCodec struct{}

const sketchFormat = 1

func (sketchCodec) Encode(s *QuantileSketch) ([]byte, error) {
	if s == nil {
		return nil, errors.New("quantile sketch: encode a nil sketch")
	}
	b := make([]byte, 0, 64)
	b = append(b, sketchFormat)
	b = binary.AppendUvarint(b, uint64(s.untracked))
	s.sketch.Encode(&b, false)
	return b, nil
}

func (sketchCodec) Decode(b []byte) (*QuantileSketch, error) {
	if len(b) == 0 || b[0] != sketchFormat {
		return nil, fmt.Errorf("quantile sketch: %d bytes beginning %q are not a sketch of format %d", len(b), truncateBytes(b), sketchFormat)
	}
	untracked, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return nil, errors.New("quantile sketch: bad untracked count")
	}
	sk, err := ddsketch.DecodeDDSketch(b[1+n:], newSketchStore, nil)
	if err != nil {
		return nil, fmt.Errorf("quantile sketch: %w", err)
	}
	return &QuantileSketch{sketch: sk, untracked: int64(untracked)}, nil
}

// truncateBytes keeps error messages short when a value is large.
func truncateBytes(b []byte) []byte {
	const max = 32
	if len(b) > max {
		return b[:max]
	}
	return b
}
