package export

// The events the export ships: the latest value of a counter in a bucket,
// as JSON, and the id a consumer downstream dedupes on.

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event is the latest value of one counter in one bucket, as shipped:
//
//	{"service":"1006","cinstance":"a60","metric":"255","value":42,"period":"hour","timestamp":"20160104 11:00","time_gen":"20160104 11:45:10","id":"stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411@20160104T114510Z"}
//
// A consumer keeps, for each counter (service, cinstance, uinstance,
// metric or response_code, period, timestamp), the event of the newest
// time_gen, and drops an event whose id it has seen: the export sends every
// event at least once, and an event sent twice is the same, id and value.
type Event struct {
	// Service is the service id.
	Service string `json:"service"`
	// CInstance is the application id, if the counter is per application.
	CInstance string `json:"cinstance,omitempty"`
	// UInstance is the user id, if the counter is per user.
	UInstance string `json:"uinstance,omitempty"`
	// Metric is the metric id, if the counter counts a metric.
	Metric string `json:"metric,omitempty"`
	// ResponseCode is the response code, if the counter counts responses.
	ResponseCode string `json:"response_code,omitempty"`
	// Value is the counter's latest value in the bucket.
	Value int64 `json:"value"`
	// Period is the period the counter counts over, such as "hour".
	Period string `json:"period"`
	// Timestamp is the start of the counter's period, "YYYYMMDD HH:MM" in
	// UTC.
	Timestamp string `json:"timestamp"`
	// TimeGen is the end of the bucket the value is the latest of,
	// "YYYYMMDD HH:MM:SS" in UTC: of two events of a counter, the one with
	// the later TimeGen holds the newer value.
	TimeGen string `json:"time_gen"`
	// ID is the event's stable id, the counter's key and the bucket's end:
	// "<key>@YYYYMMDDTHHMMSSZ". Keys hold no '@' after their last '/', so
	// the id is read back unambiguously.
	ID string `json:"id"`
}

const (
	timestampLayout = "20060102 15:04"
	timeGenLayout   = "20060102 15:04:05"
	idTimeLayout    = "20060102T150405Z"
)

// EventID returns the id of the event of key in the bucket that ends at
// end.
func EventID(key string, end time.Time) string {
	return string(appendEventID(make([]byte, 0, len(key)+1+len(idTimeLayout)), key, end))
}

func appendEventID(b []byte, key string, end time.Time) []byte {
	return appendDigits(end.UTC(), append(append(b, key...), '@'), layoutID)
}

// eventLine returns the event of k's value v in the bucket that ends at
// end as one JSON Lines line, '\n' included: json.Marshal's encoding of the
// Event, byte for byte, written field by field. key is k in its one
// spelling, the key the update came with.
func eventLine(k *StatsKey, key string, v int64, end time.Time) []byte {
	end = end.UTC()
	// Escaping aside, the ids are in the line twice, once in the key.
	b := make([]byte, 0, 2*len(key)+160)
	b = appendJSONString(append(b, `{"service":`...), k.Service)
	for _, f := range [...]struct{ name, v string }{
		{`,"cinstance":`, k.CInstance},
		{`,"uinstance":`, k.UInstance},
		{`,"metric":`, k.Metric},
		{`,"response_code":`, k.ResponseCode},
	} {
		if f.v != "" {
			b = appendJSONString(append(b, f.name...), f.v)
		}
	}
	b = strconv.AppendInt(append(b, `,"value":`...), v, 10)
	b = append(append(append(b, `,"period":"`...), k.Period.String()...), '"')
	b = append(appendDigits(k.Time.UTC(), append(b, `,"timestamp":"`...), layoutTimestamp), '"')
	b = append(appendDigits(end, append(b, `,"time_gen":"`...), layoutTimeGen), '"')
	b = append(b, `,"id":`...)
	if jsonSafe(key) {
		b = append(appendDigits(end, append(append(append(b, '"'), key...), '@'), layoutID), '"')
	} else {
		b = appendJSONString(b, string(appendEventID(nil, key, end)))
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as json.Marshal writes a string: quoted, with
// the characters it escapes escaped (HTML's <, > and & among them).
func appendJSONString(b []byte, s string) []byte {
	if jsonSafe(s) {
		return append(append(append(b, '"'), s...), '"')
	}
	q, _ := json.Marshal(s) // fails only on values of types it cannot encode
	return append(b, q...)
}

// jsonSafe reports whether json.Marshal writes s as it is, between quotes:
// printable ASCII, no quote, backslash or HTML character.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
