package jsonvalue

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Mean float64 `json:"mean"`
	N    int     `json:"n,omitempty"`
}

type Embedded struct {
	Shared float64
	Deep   float64 `json:"deep"`
}

type embeddedPtr struct {
	Via float64
}

type withPointerMarshaler struct{ F float64 }

func (w *withPointerMarshaler) MarshalJSON() ([]byte, error) { return []byte(`"custom"`), nil }

type shapes struct {
	Embedded
	*embeddedPtr
	Plain    float64 `json:"plain"`
	Renamed  float32 `json:"r,omitempty"`
	Quoted   float64 `json:"q,string"`
	QuotedI  int     `json:"qi,string"`
	Skipped  float64 `json:"-"`
	hidden   float64
	Shared   float64            `json:"shared_top"`
	Ptr      *float64           `json:"ptr"`
	NilPtr   *float64           `json:"nilptr"`
	Any      any                `json:"any"`
	List     []float64          `json:"list"`
	NilList  []float64          `json:"nillist"`
	Arr      [2]float64         `json:"arr"`
	ByName   map[string]float64 `json:"byname"`
	ByNum    map[int]inner      `json:"bynum"`
	Inner    inner              `json:"inner"`
	Empty    inner              `json:"empty,omitzero"`
	When     time.Time          `json:"when"`
	NoTime   time.Time          `json:"notime,omitzero"`
	Bytes    []byte             `json:"bytes"`
	Custom   withPointerMarshaler
	Text     string `json:"text"`
	OmitNone string `json:",omitempty"`
}

// fill returns a shapes value with x in every float.
func fill(x float64) *shapes {
	return &shapes{
		Embedded:    Embedded{Shared: x, Deep: x},
		embeddedPtr: &embeddedPtr{Via: x},
		Plain:       x, Renamed: float32(x), Quoted: x, QuotedI: 7, Skipped: x, hidden: x, Shared: 1,
		Ptr: &x, Any: x, List: []float64{1, x}, Arr: [2]float64{x, 2},
		ByName: map[string]float64{"b": x, "a": 1}, ByNum: map[int]inner{10: {Mean: x, N: 1}, 9: {Mean: 2}},
		Inner: inner{Mean: x}, When: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Bytes: []byte{1, 2},
		Text: "a \"quoted\" <text>",
	}
}

// A value whose floats are all finite is encoded as encoding/json encodes
// it; with NaN or an infinity in their place, every such float becomes a
// string and the rest stays byte for byte what encoding/json writes.
func TestMarshalWritesNonFiniteFloatsAsStringsAndTheRestAsEncodingJSON(t *testing.T) {
	const stand = 1234.5
	want, err := json.Marshal(fill(stand))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(fill(stand))
	if err != nil || string(got) != string(want) {
		t.Fatalf("finite: %s, %v\nwant %s", got, err, want)
	}
	for _, tc := range []struct {
		x    float64
		text string
	}{{math.NaN(), `"NaN"`}, {math.Inf(1), `"+Inf"`}, {math.Inf(-1), `"-Inf"`}} {
		got, err := Marshal(fill(tc.x))
		if err != nil {
			t.Fatalf("%v: %v", tc.x, err)
		}
		// A ",string" field's number is quoted already.
		w := strings.ReplaceAll(string(want), `"1234.5"`, "1234.5")
		if w = strings.ReplaceAll(w, "1234.5", tc.text); string(got) != w {
			t.Errorf("%v:\n got %s\nwant %s", tc.x, got, w)
		}
		if !json.Valid(got) {
			t.Errorf("%v: not valid JSON: %s", tc.x, got)
		}
	}
}

func TestMarshalOfPlainNonFiniteFloats(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{math.NaN(), `"NaN"`},
		{float32(math.Inf(1)), `"+Inf"`},
		{[]float64{0.5, math.Inf(-1)}, `[0.5,"-Inf"]`},
		{map[string]any{"x": math.NaN(), "y": "z"}, `{"x":"NaN","y":"z"}`},
		{1.5, `1.5`},
	} {
		got, err := Marshal(tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.v, got, err, tc.want)
		}
	}
}

type failing struct{}

func (failing) MarshalJSON() ([]byte, error) { return json.Marshal(math.NaN()) }

// What encoding/json refuses for other reasons is refused alike, and a
// float inside a type's own MarshalJSON is that method's to encode.
func TestMarshalKeepsOtherErrors(t *testing.T) {
	if _, err := Marshal(struct {
		F float64
		C chan int
	}{math.NaN(), nil}); err == nil {
		t.Error("a channel was encoded")
	}
	if _, err := Marshal([]any{math.NaN(), failing{}}); err == nil {
		t.Error("a failing MarshalJSON was encoded")
	}
}
