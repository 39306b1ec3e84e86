// Package export dedupes counters that change many times a second to their
// latest value per time bucket and ships them in batches to a bulk sink.
//
// Its input is the topic of counter updates, keyed by stats key. This file
// set holds the parser of those keys, untrusted input: ParseStatsKey reads
// a key into a StatsKey, or returns an error wrapping ErrStatsKey that says
// what is wrong, and never panics. A parsed key's String is the key again,
// byte for byte, as a key has exactly one spelling.
//
//	k, err := export.ParseStatsKey("stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411")
//	// k.Service "1006", k.CInstance "a60", k.Metric "255", k.Period export.Hour,
//	// k.Time 2016-01-04 11:00 UTC, k.Exported() true
package export
