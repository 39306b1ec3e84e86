package logdrain

// The records the drain writes to Kafka: every accepted line as JSON, a
// router line with its parsed fields, and a rejected frame as its raw bytes
// with the reason in headers.

import (
	"time"
)

const (
	// RouterTopic receives the router lines (APP-NAME "heroku", PROCID
	// "router") as Record JSON with Router set, keyed by request path so
	// that one route's records stay in order.
	RouterTopic = "router"
	// LogsTopic receives every other line as Record JSON, keyed by
	// hostname (the Heroku app), unless the drain drops them.
	LogsTopic = "logs"
	// RejectsTopic receives the frames the drain could not accept, raw,
	// keyed by the Logplex-Frame-Id of their body, with the headers
	// RejectReasonHeader, RejectKindHeader and RejectOffsetHeader.
	RejectsTopic = "logdrain-rejects"
)

// The headers of a record in RejectsTopic.
const (
	// RejectReasonHeader holds the parser's error: what is wrong and where.
	RejectReasonHeader = "reason"
	// RejectKindHeader says which parser refused the frame: "framing",
	// "syslog" or "router".
	RejectKindHeader = "kind"
	// RejectOffsetHeader holds the byte offset of the frame in its body,
	// in decimal.
	RejectOffsetHeader = "offset"
	// RejectFrameIDHeader holds the body's Logplex-Frame-Id, when it had one.
	RejectFrameIDHeader = "frame-id"
)

// The kinds of rejected frames, the values of RejectKindHeader.
const (
	RejectFraming = "framing"
	RejectSyslog  = "syslog"
	RejectRouter  = "router"
)

// timestampLayout is RFC 3339 with microseconds always written, the
// precision of RFC 5424 timestamps, so that every record's timestamp has a
// fraction of the same width.
const timestampLayout = "2006-01-02T15:04:05.000000Z07:00"

// Record is a syslog line as the drain writes it to RouterTopic and
// LogsTopic, in JSON.
type Record struct {
	// Priority is the message's PRI, Facility*8 + Severity.
	Priority int `json:"priority"`
	// Facility is Priority / 8.
	Facility int `json:"facility"`
	// Severity is Priority % 8.
	Severity int `json:"severity"`
	// Version is the syslog protocol version.
	Version int `json:"version"`
	// Timestamp is the message's time in RFC 3339 with microseconds; empty
	// when the message had the NILVALUE.
	Timestamp string `json:"timestamp"`
	// Hostname is HOSTNAME.
	Hostname string `json:"hostname"`
	// App is APP-NAME.
	App string `json:"app"`
	// ProcID is PROCID.
	ProcID string `json:"procid"`
	// MsgID is MSGID.
	MsgID string `json:"msgid"`
	// StructuredData are the message's SD elements; empty when it had none,
	// as Logplex sends it.
	StructuredData []SDElementJSON `json:"structured_data"`
	// Msg is MSG, without the frame's trailing newline.
	Msg string `json:"msg"`
	// Router holds the parsed fields of a router line; nil for other lines.
	Router *RouterJSON `json:"router,omitempty"`
}

// SDElementJSON is one structured-data element of a Record.
type SDElementJSON struct {
	ID     string      `json:"id"`
	Params []FieldJSON `json:"params"`
}

// FieldJSON is a name and a value: a structured-data parameter or a router
// line field.
type FieldJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// RouterJSON is the parsed fields of a router line, as in a Record.
type RouterJSON struct {
	At        string   `json:"at"`
	Code      string   `json:"code,omitempty"`
	Desc      string   `json:"desc,omitempty"`
	Method    string   `json:"method"`
	Path      string   `json:"path"`
	Host      string   `json:"host"`
	RequestID string   `json:"request_id"`
	Fwd       []string `json:"fwd"`
	Dyno      string   `json:"dyno"`
	// ConnectMS and ServiceMS are in milliseconds; null when the line has
	// no value for them.
	ConnectMS *float64 `json:"connect_ms"`
	ServiceMS *float64 `json:"service_ms"`
	// Status is 0 when the line has no status.
	Status   int    `json:"status"`
	Bytes    int64  `json:"bytes"`
	Protocol string `json:"protocol,omitempty"`
	// Fields are all the line's fields in order, the unknown ones included.
	Fields []FieldJSON `json:"fields"`
}

// NewRecord returns the Record of m, with the router fields r when m is a
// router line (r may be nil).
func NewRecord(m *Message, r *RouterLine) Record {
	rec := Record{
		Priority: m.Priority,
		Facility: m.Facility(),
		Severity: m.Severity(),
		Version:  m.Version,
		Hostname: m.Hostname,
		App:      m.AppName,
		ProcID:   m.ProcID,
		MsgID:    m.MsgID,
		Msg:      m.Msg,
	}
	if !m.Timestamp.IsZero() {
		rec.Timestamp = m.Timestamp.Format(timestampLayout)
	}
	for _, e := range m.StructuredData {
		el := SDElementJSON{ID: e.ID, Params: make([]FieldJSON, 0, len(e.Params))}
		for _, p := range e.Params {
			el.Params = append(el.Params, FieldJSON(p))
		}
		rec.StructuredData = append(rec.StructuredData, el)
	}
	if rec.StructuredData == nil {
		rec.StructuredData = []SDElementJSON{}
	}
	if r != nil {
		rec.Router = newRouterJSON(r)
	}
	return rec
}

func newRouterJSON(r *RouterLine) *RouterJSON {
	j := &RouterJSON{
		At: r.At, Code: r.Code, Desc: r.Desc, Method: r.Method, Path: r.Path, Host: r.Host,
		RequestID: r.RequestID, Fwd: r.Fwd, Dyno: r.Dyno, Status: r.Status, Bytes: r.Bytes,
		Protocol: r.Protocol, Fields: make([]FieldJSON, 0, len(r.Fields)),
	}
	if j.Fwd == nil {
		j.Fwd = []string{}
	}
	if r.HasConnect {
		ms := millis(r.Connect)
		j.ConnectMS = &ms
	}
	if r.HasService {
		ms := millis(r.Service)
		j.ServiceMS = &ms
	}
	for _, f := range r.Fields {
		j.Fields = append(j.Fields, FieldJSON{Name: f.Key, Value: f.Value})
	}
	return j
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
