package export

// The stats key parser as first written, on strings.Split, time.Parse and
// time.Format: the parser and the layouts must agree with it on every
// input, value and error alike.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func refCompactTime(t time.Time) string {
	s := t.UTC().Format(compactLayout)
	n := len(s)
	for n > len(s)-maxStrippedZeros && s[n-1] == '0' {
		n--
	}
	return s[:n]
}

func ParserefCompactTime(s string) (time.Time, error) {
	if len(s) < len(compactLayout)-maxStrippedZeros || len(s) > len(compactLayout) {
		return time.Time{}, fmt.Errorf("compact time %q: want 8 to 14 digits", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, fmt.Errorf("compact time %q: want only digits", s)
		}
	}
	t, err := time.Parse(compactLayout, s+strings.Repeat("0", len(compactLayout)-len(s)))
	if err != nil {
		return time.Time{}, fmt.Errorf("compact time %q: not a date and time", s)
	}
	if c := refCompactTime(t); c != s {
		return time.Time{}, fmt.Errorf("compact time %q: trailing zeros not removed (want %q)", s, c)
	}
	return t, nil
}

func refParseStatsKey(key string) (StatsKey, error) {
	k, err := refParseStatsKeyParts(key)
	if err != nil {
		return StatsKey{}, fmt.Errorf("%w %q: %s", ErrStatsKey, key, err)
	}
	return k, nil
}

func refParseStatsKeyParts(key string) (StatsKey, error) {
	var k StatsKey
	rest, ok := strings.CutPrefix(key, "stats/{service:")
	if !ok {
		return k, errors.New(`want it to start with "stats/{service:"`)
	}
	parts := strings.Split(rest, "/")
	svc, ok := strings.CutSuffix(parts[0], "}")
	if !ok {
		return k, errors.New(`want "}" after the service id`)
	}
	if svc == "" {
		return k, errors.New("empty service id")
	}
	k.Service = svc
	parts = parts[1:]
	if len(parts) > 0 {
		if v, ok := strings.CutPrefix(parts[0], "cinstance:"); ok {
			if v == "" {
				return k, errors.New("empty application id")
			}
			k.CInstance, parts = v, parts[1:]
		} else if v, ok := strings.CutPrefix(parts[0], "uinstance:"); ok {
			if v == "" {
				return k, errors.New("empty user id")
			}
			k.UInstance, parts = v, parts[1:]
		}
	}
	if len(parts) == 0 {
		return k, errors.New("no metric or response_code")
	}
	if v, ok := strings.CutPrefix(parts[0], "metric:"); ok {
		if v == "" {
			return k, errors.New("empty metric id")
		}
		k.Metric = v
	} else if v, ok := strings.CutPrefix(parts[0], "response_code:"); ok {
		if v == "" {
			return k, errors.New("empty response code")
		}
		k.ResponseCode = v
	} else {
		return k, fmt.Errorf("want metric: or response_code:, found %q", parts[0])
	}
	parts = parts[1:]
	if len(parts) == 0 {
		return k, errors.New("no period")
	}
	if len(parts) > 1 {
		return k, fmt.Errorf("unexpected %q after the period", strings.Join(parts[1:], "/"))
	}
	name, compact, hasTime := strings.Cut(parts[0], ":")
	k.Period = -1
	for p, n := range periodNames {
		if n == name {
			k.Period = Period(p)
		}
	}
	switch {
	case k.Period < 0:
		return k, fmt.Errorf("unknown period %q", name)
	case k.Period == Eternity && hasTime:
		return k, errors.New("eternity has no time")
	case k.Period == Eternity:
		return k, nil
	case !hasTime:
		return k, fmt.Errorf("%s needs a compact time", k.Period)
	}
	t, err := ParserefCompactTime(compact)
	if err != nil {
		return k, err
	}
	if !k.Period.Start(t).Equal(t) {
		return k, fmt.Errorf("%s is not the start of its %s", compact, k.Period)
	}
	k.Time = t
	return k, nil
}

// FuzzParseStatsKeyAgreesWithTheStringsAndTimeParser checks that every
// input parses to the same key, or fails with the same reason, as with the
// parser written on strings.Split and time.Parse, and that a parsed key's
// String and CompactTime are time.Format's.
func FuzzParseStatsKeyAgreesWithTheStringsAndTimeParser(f *testing.F) {
	for _, s := range []string{
		"stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411",
		"stats/{service:1006}/uinstance:u/response_code:2XX/minute:201601041145",
		"stats/{service:1}/metric:2/eternity", "stats/{service:1}/metric:2/week:20160104",
		"stats/{service:1}/metric:2/year:20160101", "stats/{service:1}/metric:2/hour:2016010210",
		"stats/{service:}/metric:2/eternity", "stats/{service:1}/metric:2/day:20160230",
		"stats/{service:1}/metric:2/day:20160229", "stats/{service:1}/metric:2/day:19000229",
		"stats/{service:1}/metric:2/day:20000229", "stats/{service:1}/metric:2/year:00000101",
		"stats/{service:1}/metric:2/minute:20161231235900", "stats/{service:1}/metric:2/hour:2016010424",
		"stats/{service:1}/", "stats/{service:1}/cinstance:a/", "stats/{service:a}}/metric:m/day:20160104/",
		"stats/{service:1}/metric:2/day:20160100", "stats/{service:1}/metric:2/day:20160001",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, err := ParseStatsKey(key)
		want, wantErr := refParseStatsKey(key)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("ParseStatsKey(%q) error %v, want %v", key, err, wantErr)
		}
		if got != want {
			t.Fatalf("ParseStatsKey(%q) = %+v, want %+v", key, got, want)
		}
		if err != nil {
			return
		}
		if s := got.String(); s != key {
			t.Fatalf("String() = %q, want %q", s, key)
		}
		if c, want := CompactTime(got.Time), refCompactTime(got.Time); c != want {
			t.Fatalf("CompactTime(%s) = %q, want %q", got.Time, c, want)
		}
	})
}

func TestTheLayoutsAreTimeFormats(t *testing.T) {
	for _, tm := range []time.Time{
		utc(2016, 1, 4, 11, 45, 10), utc(1, 1, 1, 0, 0, 0), utc(9999, 12, 31, 23, 59, 59),
		utc(10000, 1, 1, 0, 0, 0), utc(-1, 1, 1, 0, 0, 0), utc(2016, 10, 20, 9, 5, 3),
	} {
		for layout, want := range []string{compactLayout, timestampLayout, timeGenLayout, idTimeLayout} {
			if got := string(appendDigits(tm, nil, layout)); got != tm.Format(want) {
				t.Errorf("%s in %q: got %q, want %q", tm, want, got, tm.Format(want))
			}
		}
		if got, want := CompactTime(tm), refCompactTime(tm); got != want {
			t.Errorf("CompactTime(%s) = %q, want %q", tm, got, want)
		}
	}
}
