package export

import (
	"encoding/json"
	"testing"
	"time"
)

// marshalledEvent is the event of k's value v in the bucket that ends at
// end, as encoding/json writes it: what eventLine must write.
func marshalledEvent(t *testing.T, k StatsKey, v int64, end time.Time) string {
	t.Helper()
	ev := Event{
		Service:      k.Service,
		CInstance:    k.CInstance,
		UInstance:    k.UInstance,
		Metric:       k.Metric,
		ResponseCode: k.ResponseCode,
		Value:        v,
		Period:       k.Period.String(),
		Timestamp:    k.Time.UTC().Format(timestampLayout),
		TimeGen:      end.UTC().Format(timeGenLayout),
		ID:           k.String() + "@" + end.UTC().Format(idTimeLayout),
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestEventLineIsTheEventAsJSON(t *testing.T) {
	end := utc(2016, 1, 4, 11, 45, 10)
	for _, tt := range []struct {
		key string
		v   int64
	}{
		{"stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411", 42},
		{"stats/{service:1006}/uinstance:alice/response_code:2XX/minute:201601041145", -7},
		{"stats/{service:1}/metric:2/year:20160101", 0},
		{"stats/{service:1}/response_code:404/month:20161001", 1 << 62},
		// The characters encoding/json escapes, HTML's included, and
		// bytes that are not UTF-8.
		{`stats/{service:a"b\c}/cinstance:<x>&y/metric:tab` + "\t\x00\x7f/day:20160104", 1},
		{"stats/{service:\u00e9\u2028}/uinstance:\xff\xfe/metric:m/day:20160104", 1},
	} {
		k, err := ParseStatsKey(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		got, want := string(eventLine(&k, tt.key, tt.v, end)), marshalledEvent(t, k, tt.v, end)
		if got != want {
			t.Errorf("eventLine:\ngot  %s\nwant %s", got, want)
		}
		if id := EventID(tt.key, end.In(time.FixedZone("CET", 3600))); id != tt.key+"@20160104T114510Z" {
			t.Errorf("EventID = %q", id)
		}
	}
}

// FuzzEventLineIsTheEventAsJSON checks the line of every key that parses
// against encoding/json's encoding of its Event.
func FuzzEventLineIsTheEventAsJSON(f *testing.F) {
	f.Add("stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411", int64(42), int64(1451907910))
	f.Add("stats/{service:<&>}/uinstance:\"\\/response_code:2XX/minute:201601041145", int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, key string, v, endSec int64) {
		k, err := ParseStatsKey(key)
		if err != nil || !k.Exported() {
			return
		}
		// Bucket ends within the years 0 to 9999, as time_gen has 4 digits.
		end := time.Unix(endSec%253402300799, 0).UTC()
		if end.Year() < 0 {
			return
		}
		if got, want := string(eventLine(&k, key, v, end)), marshalledEvent(t, k, v, end); got != want {
			t.Fatalf("eventLine:\ngot  %s\nwant %s", got, want)
		}
	})
}
