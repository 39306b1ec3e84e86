package export

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPendingCodecRoundTripsEveryRow(t *testing.T) {
	c := PendingCodec()
	for _, p := range []Pending{
		{},
		{Buckets: []PendingBucket{{End: utc(2016, 1, 4, 11, 45, 10), Value: 42}}},
		{
			Buckets: []PendingBucket{
				{End: utc(2016, 1, 4, 11, 45, 10), Value: -1 << 63},
				{End: utc(2016, 1, 4, 11, 45, 20), Value: 1<<63 - 1},
				{End: time.Unix(-62135596800, 999_999_999).UTC(), Value: 0}, // year 1
				{End: utc(9999, 12, 31, 23, 59, 50), Value: 7},
			},
			Rechecks: 3,
			Armed:    utc(2016, 1, 4, 11, 46, 0),
		},
	} {
		b, err := c.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("decode % x: %v", b, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip:\ngot  %+v\nwant %+v", got, p)
		}
	}
}

func TestPendingCodecReadsRowsWrittenAsJSON(t *testing.T) {
	p := Pending{
		Buckets:  []PendingBucket{{End: utc(2016, 1, 4, 11, 45, 10), Value: 42}, {End: utc(2016, 1, 4, 11, 45, 20), Value: 43}},
		Rechecks: 1,
		Armed:    utc(2016, 1, 4, 11, 46, 0),
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := PendingCodec().Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("got  %+v\nwant %+v", got, p)
	}
}

func TestPendingCodecRejectsABadRowWithItsReason(t *testing.T) {
	good, err := PendingCodec().Encode(Pending{Buckets: []PendingBucket{{End: utc(2016, 1, 4, 11, 45, 10), Value: 300}}, Armed: utc(2016, 1, 4, 11, 46, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		says string
	}{
		{"empty", nil, "want version 1 or a JSON object"},
		{"unknown version", []byte{9, 0, 0, 0}, "want version 1 or a JSON object, found 09"},
		{"bad JSON", []byte(`{"buckets":`), "pending row as JSON"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "1 bytes after the buckets"},
		{"bad armed flag", []byte{1, 0, 2, 0}, "armed flag 2"},
		{"too many buckets", []byte{1, 0, 0, 100, 0}, "100 buckets in 1 bytes"},
	} {
		_, err := PendingCodec().Decode(tt.b)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: error %v, want one that says %q", tt.name, err, tt.says)
		}
	}
}

// FuzzPendingCodecNeverPanics checks that any bytes decode or fail, and
// that what decodes encodes to a row that decodes the same.
func FuzzPendingCodecNeverPanics(f *testing.F) {
	good, _ := PendingCodec().Encode(Pending{Buckets: []PendingBucket{{End: utc(2016, 1, 4, 11, 45, 10), Value: 42}}, Rechecks: 2, Armed: utc(2016, 1, 4, 11, 46, 0)})
	f.Add(good)
	f.Add([]byte(`{"buckets":[{"end":"2016-01-04T11:45:10Z","value":42}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := PendingCodec().Decode(b)
		if err != nil {
			return
		}
		again, err := PendingCodec().Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := PendingCodec().Decode(again)
		if err != nil {
			t.Fatalf("decode of the encoded row: %v", err)
		}
		if len(q.Buckets) != len(p.Buckets) || q.Rechecks != max(p.Rechecks, 0) {
			t.Fatalf("got %+v, want %+v", q, p)
		}
	})
}
