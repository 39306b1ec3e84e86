package export

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

func TestParseStatsKeyEveryShape(t *testing.T) {
	hour := utc(2016, 1, 4, 11, 0, 0)
	tests := []struct {
		key  string
		want StatsKey
	}{
		{"stats/{service:1006}/metric:255/hour:2016010411", StatsKey{Service: "1006", Metric: "255", Period: Hour, Time: hour}},
		{"stats/{service:1006}/response_code:200/hour:2016010411", StatsKey{Service: "1006", ResponseCode: "200", Period: Hour, Time: hour}},
		{"stats/{service:1006}/response_code:2XX/hour:2016010411", StatsKey{Service: "1006", ResponseCode: "2XX", Period: Hour, Time: hour}},
		{"stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411", StatsKey{Service: "1006", CInstance: "a60", Metric: "255", Period: Hour, Time: hour}},
		{"stats/{service:1006}/cinstance:a60/response_code:404/hour:2016010411", StatsKey{Service: "1006", CInstance: "a60", ResponseCode: "404", Period: Hour, Time: hour}},
		{"stats/{service:1006}/uinstance:alice/metric:255/hour:2016010411", StatsKey{Service: "1006", UInstance: "alice", Metric: "255", Period: Hour, Time: hour}},
		{"stats/{service:1006}/uinstance:alice/response_code:5XX/hour:2016010411", StatsKey{Service: "1006", UInstance: "alice", ResponseCode: "5XX", Period: Hour, Time: hour}},
		// Every period; the spec's example of a compact time is the hour key.
		{"stats/{service:1}/metric:2/eternity", StatsKey{Service: "1", Metric: "2", Period: Eternity}},
		{"stats/{service:1}/metric:2/year:20160101", StatsKey{Service: "1", Metric: "2", Period: Year, Time: utc(2016, 1, 1, 0, 0, 0)}},
		{"stats/{service:1}/metric:2/month:20161001", StatsKey{Service: "1", Metric: "2", Period: Month, Time: utc(2016, 10, 1, 0, 0, 0)}},
		{"stats/{service:1}/metric:2/week:20160104", StatsKey{Service: "1", Metric: "2", Period: Week, Time: utc(2016, 1, 4, 0, 0, 0)}},
		{"stats/{service:1}/metric:2/day:20160110", StatsKey{Service: "1", Metric: "2", Period: Day, Time: utc(2016, 1, 10, 0, 0, 0)}},
		{"stats/{service:1}/metric:2/hour:201601021", StatsKey{Service: "1", Metric: "2", Period: Hour, Time: utc(2016, 1, 2, 10, 0, 0)}},
		{"stats/{service:1}/metric:2/hour:20160102", StatsKey{Service: "1", Metric: "2", Period: Hour, Time: utc(2016, 1, 2, 0, 0, 0)}},
		{"stats/{service:1}/metric:2/minute:201601041145", StatsKey{Service: "1", Metric: "2", Period: Minute, Time: utc(2016, 1, 4, 11, 45, 0)}},
		{"stats/{service:1}/metric:2/minute:20160104114", StatsKey{Service: "1", Metric: "2", Period: Minute, Time: utc(2016, 1, 4, 11, 40, 0)}},
		{"stats/{service:1}/metric:2/minute:201601040001", StatsKey{Service: "1", Metric: "2", Period: Minute, Time: utc(2016, 1, 4, 0, 1, 0)}},
		// Ids may hold any byte but '/', a colon included.
		{"stats/{service:s:1}/uinstance:user:a b/metric:hits/day:20160104", StatsKey{Service: "s:1", UInstance: "user:a b", Metric: "hits", Period: Day, Time: utc(2016, 1, 4, 0, 0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := ParseStatsKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if s := got.String(); s != tt.key {
				t.Errorf("String() = %q, want the key back", s)
			}
		})
	}
}

func TestWeekAndEternityAreNotExported(t *testing.T) {
	want := map[Period]bool{Eternity: false, Year: true, Month: true, Week: false, Day: true, Hour: true, Minute: true}
	for p, exported := range want {
		if p.Exported() != exported {
			t.Errorf("%s.Exported() = %v, want %v", p, p.Exported(), exported)
		}
	}
	for key, exported := range map[string]bool{
		"stats/{service:1}/metric:2/eternity":       false,
		"stats/{service:1}/metric:2/week:20160104":  false,
		"stats/{service:1}/metric:2/day:20160104":   true,
		"stats/{service:1}/metric:2/hour:201601021": true,
	} {
		k, err := ParseStatsKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if k.Exported() != exported {
			t.Errorf("%s: Exported() = %v, want %v", key, k.Exported(), exported)
		}
	}
	if Period(7).Exported() || Period(-1).Exported() {
		t.Error("a period out of range is exported")
	}
}

func TestCompactTimeRemovesUpToSixTrailingZeros(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{utc(2016, 1, 4, 11, 45, 19), "20160104114519"},
		{utc(2016, 1, 4, 11, 45, 10), "2016010411451"},
		{utc(2016, 1, 4, 11, 45, 0), "201601041145"},
		{utc(2016, 1, 4, 11, 40, 0), "20160104114"},
		{utc(2016, 1, 4, 11, 0, 0), "2016010411"},
		{utc(2016, 1, 2, 10, 0, 0), "201601021"},
		{utc(2016, 1, 4, 0, 0, 0), "20160104"},
		{utc(2016, 1, 10, 0, 0, 0), "20160110"}, // the date's own zero stays
		{utc(2020, 10, 20, 0, 0, 0), "20201020"},
		{time.Date(2016, 1, 4, 12, 0, 0, 0, time.FixedZone("CET", 3600)), "2016010411"},
	}
	for _, tt := range tests {
		if got := CompactTime(tt.t); got != tt.want {
			t.Errorf("CompactTime(%s) = %q, want %q", tt.t, got, tt.want)
		}
		got, err := ParseCompactTime(tt.want)
		if err != nil || !got.Equal(tt.t) || got.Location() != time.UTC {
			t.Errorf("ParseCompactTime(%q) = %s, %v, want %s in UTC", tt.want, got, err, tt.t)
		}
	}
}

func TestParseStatsKeyErrorsSayWhy(t *testing.T) {
	tests := []struct {
		key, reason string
	}{
		{"", `want it to start with "stats/{service:"`},
		{"stats/service:1/metric:2/eternity", `want it to start with "stats/{service:"`},
		{"stats/{service:1/metric:2/eternity", `want "}" after the service id`},
		{"stats/{service:}/metric:2/eternity", "empty service id"},
		{"stats/{service:1}", "no metric or response_code"},
		{"stats/{service:1}/cinstance:/metric:2/eternity", "empty application id"},
		{"stats/{service:1}/uinstance:/metric:2/eternity", "empty user id"},
		{"stats/{service:1}/cinstance:a", "no metric or response_code"},
		{"stats/{service:1}/cinstance:a/uinstance:u/metric:2/eternity", `want metric: or response_code:, found "uinstance:u"`},
		{"stats/{service:1}/metric:/eternity", "empty metric id"},
		{"stats/{service:1}/response_code:/eternity", "empty response code"},
		{"stats/{service:1}/metric:2", "no period"},
		{"stats/{service:1}/metric:2/eternity/extra", `unexpected "extra" after the period`},
		{"stats/{service:1}/metric:2/fortnight:20160104", `unknown period "fortnight"`},
		{"stats/{service:1}/metric:2/Hour:2016010411", `unknown period "Hour"`},
		{"stats/{service:1}/metric:2/eternity:20160104", "eternity has no time"},
		{"stats/{service:1}/metric:2/hour", "hour needs a compact time"},
		{"stats/{service:1}/metric:2/hour:", `compact time "": want 8 to 14 digits`},
		{"stats/{service:1}/metric:2/day:2016010", `compact time "2016010": want 8 to 14 digits`},
		{"stats/{service:1}/metric:2/minute:201601041145001", `compact time "201601041145001": want 8 to 14 digits`},
		{"stats/{service:1}/metric:2/day:2016-01-04", `compact time "2016-01-04": want only digits`},
		{"stats/{service:1}/metric:2/day:20161304", `compact time "20161304": not a date and time`},
		{"stats/{service:1}/metric:2/day:20160230", `compact time "20160230": not a date and time`},
		{"stats/{service:1}/metric:2/hour:2016010425", `compact time "2016010425": not a date and time`},
		{"stats/{service:1}/metric:2/hour:2016010210", `compact time "2016010210": trailing zeros not removed (want "201601021")`},
		{"stats/{service:1}/metric:2/hour:20160104110000", `compact time "20160104110000": trailing zeros not removed (want "2016010411")`},
		{"stats/{service:1}/metric:2/hour:20160104113", "20160104113 is not the start of its hour"},
		{"stats/{service:1}/metric:2/day:2016010411", "2016010411 is not the start of its day"},
		{"stats/{service:1}/metric:2/month:20160104", "20160104 is not the start of its month"},
		{"stats/{service:1}/metric:2/year:20160201", "20160201 is not the start of its year"},
		{"stats/{service:1}/metric:2/minute:2016010411451", "2016010411451 is not the start of its minute"},
	}
	for _, tt := range tests {
		_, err := ParseStatsKey(tt.key)
		want := "bad stats key " + strconv.Quote(tt.key) + ": " + tt.reason
		if err == nil || !errors.Is(err, ErrStatsKey) || err.Error() != want {
			t.Errorf("ParseStatsKey(%q) error %v\nwant %s", tt.key, err, want)
		}
	}
}

// FuzzParseStatsKey checks that ParseStatsKey never panics and that every
// key it parses is in its one spelling: String gives the key back.
func FuzzParseStatsKey(f *testing.F) {
	for _, s := range []string{
		"stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411",
		"stats/{service:1006}/uinstance:u/response_code:2XX/minute:201601041145",
		"stats/{service:1}/metric:2/eternity", "stats/{service:1}/metric:2/week:20160104",
		"stats/{service:1}/metric:2/year:20160101", "stats/{service:1}/metric:2/hour:2016010210",
		"stats/{service:}/metric:2/eternity", "stats/{service:1}/metric:2/day:20160230",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseStatsKey(key)
		if err != nil {
			if !errors.Is(err, ErrStatsKey) {
				t.Fatalf("error %v does not wrap ErrStatsKey", err)
			}
			return
		}
		if s := k.String(); s != key {
			t.Fatalf("String() = %q, want %q", s, key)
		}
		if k.Period != Eternity && !k.Period.Start(k.Time).Equal(k.Time) {
			t.Fatalf("%s does not start its period", k.Time)
		}
	})
}
