package logdrain

// Record's JSON written by hand: the drain encodes every line it accepts,
// and encoding/json's reflection was a quarter of the drain's CPU time.
// AppendJSON writes what json.Marshal writes of a Record, field for field,
// except that it does not escape <, > and & for HTML; strings that are not
// valid UTF-8 have their bad bytes replaced with U+FFFD, as json.Marshal
// does.

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends r as JSON to dst and returns the extended buffer.
func (r *Record) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"priority":`...)
	dst = strconv.AppendInt(dst, int64(r.Priority), 10)
	dst = append(dst, `,"facility":`...)
	dst = strconv.AppendInt(dst, int64(r.Facility), 10)
	dst = append(dst, `,"severity":`...)
	dst = strconv.AppendInt(dst, int64(r.Severity), 10)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(r.Version), 10)
	dst = appendStringField(dst, "timestamp", r.Timestamp)
	dst = appendStringField(dst, "hostname", r.Hostname)
	dst = appendStringField(dst, "app", r.App)
	dst = appendStringField(dst, "procid", r.ProcID)
	dst = appendStringField(dst, "msgid", r.MsgID)
	dst = append(dst, `,"structured_data":`...)
	if r.StructuredData == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, e := range r.StructuredData {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"id":`...)
			dst = appendJSONString(dst, e.ID)
			dst = append(dst, `,"params":`...)
			dst = appendFields(dst, e.Params)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = appendStringField(dst, "msg", r.Msg)
	if r.Router != nil {
		dst = append(dst, `,"router":`...)
		dst = r.Router.appendJSON(dst)
	}
	return append(dst, '}')
}

func (j *RouterJSON) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"at":`...)
	dst = appendJSONString(dst, j.At)
	if j.Code != "" {
		dst = appendStringField(dst, "code", j.Code)
	}
	if j.Desc != "" {
		dst = appendStringField(dst, "desc", j.Desc)
	}
	dst = appendStringField(dst, "method", j.Method)
	dst = appendStringField(dst, "path", j.Path)
	dst = appendStringField(dst, "host", j.Host)
	dst = appendStringField(dst, "request_id", j.RequestID)
	dst = append(dst, `,"fwd":`...)
	if j.Fwd == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, a := range j.Fwd {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, a)
		}
		dst = append(dst, ']')
	}
	dst = appendStringField(dst, "dyno", j.Dyno)
	dst = append(dst, `,"connect_ms":`...)
	dst = appendMillis(dst, j.ConnectMS)
	dst = append(dst, `,"service_ms":`...)
	dst = appendMillis(dst, j.ServiceMS)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(j.Status), 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, j.Bytes, 10)
	if j.Protocol != "" {
		dst = appendStringField(dst, "protocol", j.Protocol)
	}
	dst = append(dst, `,"fields":`...)
	dst = appendFields(dst, j.Fields)
	return append(dst, '}')
}

func appendFields(dst []byte, fs []FieldJSON) []byte {
	if fs == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, f := range fs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendJSONString(dst, f.Name)
		dst = append(dst, `,"value":`...)
		dst = appendJSONString(dst, f.Value)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendMillis writes a time in milliseconds, or null. The parsers give
// only finite, non-negative durations.
func appendMillis(dst []byte, ms *float64) []byte {
	if ms == nil {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, *ms, 'f', -1, 64)
}

func appendStringField(dst []byte, name, v string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendJSONString(dst, v)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and
// control characters escaped, U+2028 and U+2029 escaped as encoding/json
// does for JavaScript, bytes that are not UTF-8 replaced with U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
