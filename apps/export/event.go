package export

// The events the export ships: the latest value of a counter in a bucket,
// as JSON, and the id a consumer downstream dedupes on.

import (
	"encoding/json"
	"fmt"
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
	return key + "@" + end.UTC().Format(idTimeLayout)
}

// newEvent returns the event of k's value v in the bucket that ends at end.
func newEvent(k StatsKey, v int64, end time.Time) Event {
	return Event{
		Service:      k.Service,
		CInstance:    k.CInstance,
		UInstance:    k.UInstance,
		Metric:       k.Metric,
		ResponseCode: k.ResponseCode,
		Value:        v,
		Period:       k.Period.String(),
		Timestamp:    k.Time.UTC().Format(timestampLayout),
		TimeGen:      end.UTC().Format(timeGenLayout),
		ID:           EventID(k.String(), end),
	}
}

// line returns the event as one JSON Lines line, '\n' included.
func (e *Event) line() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return append(b, '\n'), nil
}
