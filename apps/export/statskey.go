package export

// Stats keys, the Kafka keys of the counter updates:
//
//	stats/{service:<id>}[/cinstance:<app>|/uinstance:<user>]/(metric:<id>|response_code:<code>)/<period>[:<compact time>]
//
// A compact time is the period's start as YYYYMMDDHHMMSS in UTC with up to
// six trailing zeros removed (2016-01-02 10:00 → 201601021), so a key has
// exactly one spelling. ParseStatsKey accepts only that spelling, and only a
// time that starts its period, so that two spellings of one counter never
// become two keys downstream; String writes it back byte for byte.

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrStatsKey is what every stats key error wraps.
var ErrStatsKey = errors.New("bad stats key")

// Period is the span a counter counts over.
type Period int

// The periods of a stats key, longest first.
const (
	// Eternity counts since the counter began; its key has no time.
	Eternity Period = iota
	// Year counts over a calendar year.
	Year
	// Month counts over a calendar month.
	Month
	// Week counts over a week.
	Week
	// Day counts over a day.
	Day
	// Hour counts over an hour.
	Hour
	// Minute counts over a minute.
	Minute
)

var periodNames = [...]string{"eternity", "year", "month", "week", "day", "hour", "minute"}

// String returns the period's name as keys spell it, such as "hour".
func (p Period) String() string {
	if p < 0 || int(p) >= len(periodNames) {
		return fmt.Sprintf("Period(%d)", int(p))
	}
	return periodNames[p]
}

// Exported reports whether counters of this period are exported: all but
// Week and Eternity.
func (p Period) Exported() bool { return p != Week && p != Eternity && p.valid() }

func (p Period) valid() bool { return p >= Eternity && p <= Minute }

// Start returns the start of the period that contains t, in UTC: t
// truncated to the minute, hour, day, month or year. For Week it truncates
// to the day, as a key does not say on which weekday its weeks start;
// Eternity has no start and returns the zero time.
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	y, mo, d := t.Date()
	switch p {
	case Year:
		return time.Date(y, time.January, 1, 0, 0, 0, 0, time.UTC)
	case Month:
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	case Week, Day:
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case Hour:
		return time.Date(y, mo, d, t.Hour(), 0, 0, 0, time.UTC)
	case Minute:
		return time.Date(y, mo, d, t.Hour(), t.Minute(), 0, 0, time.UTC)
	}
	return time.Time{}
}

// StatsKey is a parsed stats key. Exactly one of Metric and ResponseCode
// is set, and at most one of CInstance and UInstance.
type StatsKey struct {
	// Service is the service id.
	Service string
	// CInstance is the application id, when the counter is per application.
	CInstance string
	// UInstance is the user id, when the counter is per user.
	UInstance string
	// Metric is the metric id, when the counter counts a metric.
	Metric string
	// ResponseCode is the response code, such as "200" or "2XX", when the
	// counter counts responses.
	ResponseCode string
	// Period is the span the counter counts over.
	Period Period
	// Time is the start of the period in UTC; the zero time for Eternity.
	Time time.Time
}

// Exported reports whether the key's counter is exported: false for the
// periods Week and Eternity.
func (k *StatsKey) Exported() bool { return k.Period.Exported() }

// String returns the key in its one spelling, which ParseStatsKey reads
// back as k.
func (k *StatsKey) String() string {
	var sb strings.Builder
	sb.WriteString("stats/{service:")
	sb.WriteString(k.Service)
	sb.WriteString("}")
	switch {
	case k.CInstance != "":
		sb.WriteString("/cinstance:")
		sb.WriteString(k.CInstance)
	case k.UInstance != "":
		sb.WriteString("/uinstance:")
		sb.WriteString(k.UInstance)
	}
	if k.ResponseCode != "" {
		sb.WriteString("/response_code:")
		sb.WriteString(k.ResponseCode)
	} else {
		sb.WriteString("/metric:")
		sb.WriteString(k.Metric)
	}
	sb.WriteString("/")
	sb.WriteString(k.Period.String())
	if k.Period != Eternity {
		sb.WriteString(":")
		sb.WriteString(CompactTime(k.Time))
	}
	return sb.String()
}

// compactLayout is YYYYMMDDHHMMSS, the compact time before its trailing
// zeros are removed.
const compactLayout = "20060102150405"

// maxStrippedZeros is how many trailing zeros a compact time loses at most,
// so that its date (YYYYMMDD) is always whole.
const maxStrippedZeros = 6

// CompactTime returns t in UTC as a compact time: YYYYMMDDHHMMSS with up to
// six trailing zeros removed.
func CompactTime(t time.Time) string {
	s := t.UTC().Format(compactLayout)
	n := len(s)
	for n > len(s)-maxStrippedZeros && s[n-1] == '0' {
		n--
	}
	return s[:n]
}

// ParseCompactTime parses a compact time: 8 to 14 digits, read as
// YYYYMMDDHHMMSS in UTC after the removed zeros are put back. It accepts
// only the one spelling CompactTime writes, so "2016010410" (a zero that
// should have been removed) is an error.
func ParseCompactTime(s string) (time.Time, error) {
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
	if c := CompactTime(t); c != s {
		return time.Time{}, fmt.Errorf("compact time %q: trailing zeros not removed (want %q)", s, c)
	}
	return t, nil
}

// ParseStatsKey parses a stats key. Its error wraps ErrStatsKey and says
// what is wrong: a missing or unknown part, an empty id, an unknown period,
// a time missing or where none belongs (eternity), a compact time that is
// not one or not in its one spelling, or a time that does not start its
// period.
func ParseStatsKey(key string) (StatsKey, error) {
	k, err := parseStatsKey(key)
	if err != nil {
		return StatsKey{}, fmt.Errorf("%w %q: %s", ErrStatsKey, key, err)
	}
	return k, nil
}

func parseStatsKey(key string) (StatsKey, error) {
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
	t, err := ParseCompactTime(compact)
	if err != nil {
		return k, err
	}
	if !k.Period.Start(t).Equal(t) {
		return k, fmt.Errorf("%s is not the start of its %s", compact, k.Period)
	}
	k.Time = t
	return k, nil
}
