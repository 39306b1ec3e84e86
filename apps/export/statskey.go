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

// starts reports whether t, in UTC, starts a period: p.Start(t) is t,
// read off t's fields.
func (p Period) starts(t time.Time) bool {
	_, mo, d := t.Date()
	h, mi, s := t.Clock()
	if s != 0 || t.Nanosecond() != 0 {
		return false
	}
	switch p {
	case Year:
		return mo == time.January && d == 1 && h == 0 && mi == 0
	case Month:
		return d == 1 && h == 0 && mi == 0
	case Week, Day:
		return h == 0 && mi == 0
	case Hour:
		return mi == 0
	case Minute:
		return true
	}
	return t.IsZero()
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
	return string(k.appendTo(make([]byte, 0, 64)))
}

// appendTo appends the key in its one spelling to b.
func (k *StatsKey) appendTo(b []byte) []byte {
	b = append(b, "stats/{service:"...)
	b = append(b, k.Service...)
	b = append(b, '}')
	switch {
	case k.CInstance != "":
		b = append(b, "/cinstance:"...)
		b = append(b, k.CInstance...)
	case k.UInstance != "":
		b = append(b, "/uinstance:"...)
		b = append(b, k.UInstance...)
	}
	if k.ResponseCode != "" {
		b = append(b, "/response_code:"...)
		b = append(b, k.ResponseCode...)
	} else {
		b = append(b, "/metric:"...)
		b = append(b, k.Metric...)
	}
	b = append(b, '/')
	b = append(b, k.Period.String()...)
	if k.Period != Eternity {
		b = append(b, ':')
		b = appendCompactTime(b, k.Time)
	}
	return b
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
	return string(appendCompactTime(make([]byte, 0, len(compactLayout)), t))
}

// appendCompactTime appends CompactTime(t) to b.
func appendCompactTime(b []byte, t time.Time) []byte {
	start := len(b)
	b = appendDigits(t.UTC(), b, layoutCompact)
	n := len(b)
	for n > start+len(compactLayout)-maxStrippedZeros && b[n-1] == '0' {
		n--
	}
	return b[:n]
}

// The layouts appendDigits writes.
const (
	layoutCompact   = iota // YYYYMMDDHHMMSS
	layoutTimestamp        // YYYYMMDD HH:MM
	layoutTimeGen          // YYYYMMDD HH:MM:SS
	layoutID               // YYYYMMDDTHHMMSSZ
)

// appendDigits appends t, in UTC already, to b in one of the layouts, as
// t.Format would with compactLayout, timestampLayout, timeGenLayout or
// idTimeLayout for the years 0 to 9999, without the layout's parsing.
func appendDigits(t time.Time, b []byte, layout int) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, [...]string{compactLayout, timestampLayout, timeGenLayout, idTimeLayout}[layout])
	}
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	b = append2(append2(b, int(mo)), d)
	switch layout {
	case layoutCompact:
		return append2(append2(append2(b, h), mi), s)
	case layoutTimestamp:
		return append2(append(append2(append(b, ' '), h), ':'), mi)
	case layoutTimeGen:
		return append2(append(append2(append(append2(append(b, ' '), h), ':'), mi), ':'), s)
	}
	return append(append2(append2(append2(append(b, 'T'), h), mi), s), 'Z')
}

// append2 appends n, from 0 to 99, as two digits.
func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

// ParseCompactTime parses a compact time: 8 to 14 digits, read as
// YYYYMMDDHHMMSS in UTC after the removed zeros are put back. It accepts
// only the one spelling CompactTime writes, so "2016010410" (a zero that
// should have been removed) is an error.
func ParseCompactTime(s string) (time.Time, error) {
	if len(s) < len(compactLayout)-maxStrippedZeros || len(s) > len(compactLayout) {
		return time.Time{}, fmt.Errorf("compact time %q: want 8 to 14 digits", s)
	}
	var digits [len(compactLayout)]byte // the removed zeros put back
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, fmt.Errorf("compact time %q: want only digits", s)
		}
		digits[i] = s[i] - '0'
	}
	num := func(i, n int) int {
		v := 0
		for _, d := range digits[i : i+n] {
			v = v*10 + int(d)
		}
		return v
	}
	y, mo, d, h, mi, sec := num(0, 4), num(4, 2), num(6, 2), num(8, 2), num(10, 2), num(12, 2)
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, fmt.Errorf("compact time %q: not a date and time", s)
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	// The one spelling ends in a digit other than 0 unless it is the bare
	// date, or six zeros were removed.
	if len(s) > len(compactLayout)-maxStrippedZeros && s[len(s)-1] == '0' {
		return time.Time{}, fmt.Errorf("compact time %q: trailing zeros not removed (want %q)", s, CompactTime(t))
	}
	return t, nil
}

// daysIn returns the number of days of month mo of year y.
func daysIn(mo time.Month, y int) int {
	if mo == time.February && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		return 29
	}
	return monthDays[mo]
}

var monthDays = [...]int{time.January: 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

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

// parseStatsKey reads key part by part, each part up to the next '/',
// without allocating: the ids are substrings of key.
func parseStatsKey(key string) (StatsKey, error) {
	var k StatsKey
	rest, ok := strings.CutPrefix(key, "stats/{service:")
	if !ok {
		return k, errors.New(`want it to start with "stats/{service:"`)
	}
	part, rest, more := strings.Cut(rest, "/")
	svc, ok := strings.CutSuffix(part, "}")
	if !ok {
		return k, errors.New(`want "}" after the service id`)
	}
	if svc == "" {
		return k, errors.New("empty service id")
	}
	k.Service = svc
	if more {
		part, next, nextMore := strings.Cut(rest, "/")
		if v, ok := strings.CutPrefix(part, "cinstance:"); ok {
			if v == "" {
				return k, errors.New("empty application id")
			}
			k.CInstance, rest, more = v, next, nextMore
		} else if v, ok := strings.CutPrefix(part, "uinstance:"); ok {
			if v == "" {
				return k, errors.New("empty user id")
			}
			k.UInstance, rest, more = v, next, nextMore
		}
	}
	if !more {
		return k, errors.New("no metric or response_code")
	}
	part, rest, more = strings.Cut(rest, "/")
	if v, ok := strings.CutPrefix(part, "metric:"); ok {
		if v == "" {
			return k, errors.New("empty metric id")
		}
		k.Metric = v
	} else if v, ok := strings.CutPrefix(part, "response_code:"); ok {
		if v == "" {
			return k, errors.New("empty response code")
		}
		k.ResponseCode = v
	} else {
		return k, fmt.Errorf("want metric: or response_code:, found %q", part)
	}
	if !more {
		return k, errors.New("no period")
	}
	part, rest, more = strings.Cut(rest, "/")
	if more {
		return k, fmt.Errorf("unexpected %q after the period", rest)
	}
	name, compact, hasTime := strings.Cut(part, ":")
	k.Period = -1
	for p, n := range periodNames {
		if n == name {
			k.Period = Period(p)
			break
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
	if !k.Period.starts(t) {
		return k, fmt.Errorf("%s is not the start of its %s", compact, k.Period)
	}
	k.Time = t
	return k, nil
}
