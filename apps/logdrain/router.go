package logdrain

// Heroku router lines: the MSG of a message from APP-NAME "heroku", PROCID
// "router", as space-separated key=value fields, values optionally in double
// quotes:
//
//	at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503-… fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360
//	at=error code=H12 desc="Request timeout" method=GET path="/" host=… fwd="2001:db8::1,10.0.0.1" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0
//
// Fields are read by name in any order, so error lines, IPv6 and several fwd
// addresses, empty values (`dyno= connect=` when no dyno answered) and keys
// this parser does not know all parse; unknown keys are kept in Fields.
// Inside quotes a backslash escapes '"' and '\'; before any other character
// it is kept as it is.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrRouterLine is what every router line error wraps.
var ErrRouterLine = errors.New("bad router line")

// Field is one key=value field of a router line, its value unquoted.
type Field struct {
	// Key is the field's name, such as "path".
	Key string
	// Value is the field's value without quotes and escapes; empty for `key=`.
	Value string
}

// RouterLine is a parsed Heroku router line. The typed fields are zero when
// their key is absent or its value empty; when a key appears more than once
// the last value counts.
type RouterLine struct {
	// At is "info" or "error".
	At string
	// Code is the error code of an error line, such as "H12".
	Code string
	// Desc is the error's description, such as "Request timeout".
	Desc string
	// Method is the request's HTTP method.
	Method string
	// Path is the request's path, with its query if it had one.
	Path string
	// Host is the request's Host header.
	Host string
	// RequestID is the router's request id.
	RequestID string
	// Fwd are the client addresses of the X-Forwarded-For chain, IPv4 or
	// IPv6, in their order in the line.
	Fwd []string
	// Dyno is the dyno that served the request, such as "web.2".
	Dyno string
	// Connect is the time the router took to connect to the dyno; valid
	// when HasConnect is true.
	Connect time.Duration
	// HasConnect is true when the line gives connect a value.
	HasConnect bool
	// Service is the time the dyno took to answer; valid when HasService
	// is true.
	Service time.Duration
	// HasService is true when the line gives service a value.
	HasService bool
	// Status is the HTTP status sent to the client.
	Status int
	// Bytes is the size of the response body.
	Bytes int64
	// Protocol is "http" or "https".
	Protocol string
	// Fields are all the line's fields in order, known and unknown keys
	// alike, so that nothing of the line is lost.
	Fields []Field
}

// IsRouter reports whether m is a Heroku router line: APP-NAME "heroku"
// and PROCID "router".
func IsRouter(m *Message) bool { return m.AppName == "heroku" && m.ProcID == "router" }

// ParseRouterLine parses the MSG of a router line. Its error wraps
// ErrRouterLine and names the field that is wrong: a token without '=',
// an unterminated quote, or a connect, service, status or bytes value of
// the wrong form. A line with no field at all is an error too.
func ParseRouterLine(line string) (RouterLine, error) {
	var r RouterLine
	fields, err := splitFields(line)
	if err == nil && len(fields) == 0 {
		err = errors.New("no fields")
	}
	if err == nil {
		r.Fields = fields
		for _, f := range fields {
			if err = r.set(f); err != nil {
				break
			}
		}
	}
	if err != nil {
		return RouterLine{}, fmt.Errorf("%w: %w", ErrRouterLine, err)
	}
	return r, nil
}

// Get returns the value of the last field named key, and whether there is
// one.
func (r *RouterLine) Get(key string) (string, bool) {
	for i := len(r.Fields) - 1; i >= 0; i-- {
		if r.Fields[i].Key == key {
			return r.Fields[i].Value, true
		}
	}
	return "", false
}

// AppendFields appends fields to dst as a router line, quoting the values
// that need it, so that ParseRouterLine reads the same fields back.
func AppendFields(dst []byte, fields []Field) []byte {
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, f.Key...)
		dst = append(dst, '=')
		if !needsQuotes(f.Value) {
			dst = append(dst, f.Value...)
			continue
		}
		dst = append(dst, '"')
		for k := 0; k < len(f.Value); k++ {
			if c := f.Value[k]; c == '"' || c == '\\' {
				dst = append(dst, '\\')
			}
			dst = append(dst, f.Value[k])
		}
		dst = append(dst, '"')
	}
	return dst
}

func needsQuotes(v string) bool {
	if strings.HasPrefix(v, `"`) {
		return true
	}
	return strings.ContainsAny(v, " \t\r\n")
}

func isFieldSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// splitFields splits a line into its key=value fields.
func splitFields(line string) ([]Field, error) {
	// A router line has about a dozen fields: one allocation for most.
	fields := make([]Field, 0, 16)
	i := 0
	for {
		for i < len(line) && isFieldSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return fields, nil
		}
		start := i
		for i < len(line) && !isFieldSpace(line[i]) && line[i] != '=' && line[i] != '"' {
			i++
		}
		key := line[start:i]
		if i == len(line) || line[i] != '=' {
			end := i
			for end < len(line) && !isFieldSpace(line[end]) {
				end++
			}
			return nil, fmt.Errorf("at byte %d: %q is not key=value", start, clipString(line[start:end]))
		}
		if key == "" {
			return nil, fmt.Errorf("at byte %d: a value without a key", start)
		}
		i++
		var value string
		if i < len(line) && line[i] == '"' {
			v, next, ok := unquote(line, i+1)
			if !ok {
				return nil, fmt.Errorf("at byte %d: unterminated quoted value of %s", i, key)
			}
			value, i = v, next
			if i < len(line) && !isFieldSpace(line[i]) {
				return nil, fmt.Errorf("at byte %d: %s: text right after the closing quote", i, key)
			}
		} else {
			vs := i
			for i < len(line) && !isFieldSpace(line[i]) {
				i++
			}
			value = line[vs:i]
		}
		fields = append(fields, Field{Key: key, Value: value})
	}
}

// unquote reads a quoted value that starts at i (after the opening quote)
// and returns it and the position after the closing quote.
func unquote(line string, i int) (string, int, bool) {
	end := i
	escaped := false
	for ; end < len(line); end++ {
		c := line[end]
		if c == '"' {
			break
		}
		if c == '\\' && end+1 < len(line) && (line[end+1] == '"' || line[end+1] == '\\') {
			escaped = true
			end++
		}
	}
	if end >= len(line) {
		return "", 0, false
	}
	raw := line[i:end]
	if !escaped {
		return raw, end + 1, true
	}
	var sb strings.Builder
	for k := 0; k < len(raw); k++ {
		if raw[k] == '\\' && k+1 < len(raw) && (raw[k+1] == '"' || raw[k+1] == '\\') {
			k++
		}
		sb.WriteByte(raw[k])
	}
	return sb.String(), end + 1, true
}

func (r *RouterLine) set(f Field) error {
	var err error
	switch f.Key {
	case "at":
		r.At = f.Value
	case "code":
		r.Code = f.Value
	case "desc":
		r.Desc = f.Value
	case "method":
		r.Method = f.Value
	case "path":
		r.Path = f.Value
	case "host":
		r.Host = f.Value
	case "request_id":
		r.RequestID = f.Value
	case "fwd":
		r.Fwd = splitFwd(f.Value)
	case "dyno":
		r.Dyno = f.Value
	case "protocol":
		r.Protocol = f.Value
	case "connect":
		r.Connect, r.HasConnect, err = parseMillis(f)
	case "service":
		r.Service, r.HasService, err = parseMillis(f)
	case "status":
		r.Status = 0
		if f.Value != "" {
			r.Status, err = strconv.Atoi(f.Value)
			if err != nil || r.Status < 100 || r.Status > 999 {
				r.Status = 0
				err = fmt.Errorf("status: %q is not an HTTP status", clipString(f.Value))
			}
		}
	case "bytes":
		r.Bytes = 0
		if f.Value != "" {
			r.Bytes, err = strconv.ParseInt(f.Value, 10, 64)
			if err != nil || r.Bytes < 0 {
				r.Bytes = 0
				err = fmt.Errorf("bytes: %q is not a byte count", clipString(f.Value))
			}
		}
	}
	return err
}

// splitFwd splits the comma-separated client addresses of fwd, trimming
// the spaces around each.
func splitFwd(v string) []string {
	var addrs []string
	for a := range strings.SplitSeq(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// parseMillis parses connect and service: Heroku writes whole milliseconds
// with a unit (`12ms`); a bare number is taken as milliseconds and any
// other Go duration (`1.5s`) is accepted. An empty value is absent.
func parseMillis(f Field) (time.Duration, bool, error) {
	if f.Value == "" {
		return 0, false, nil
	}
	if n, ok := wholeMillis(strings.TrimSuffix(f.Value, "ms")); ok {
		return time.Duration(n) * time.Millisecond, true, nil
	}
	d, err := time.ParseDuration(f.Value)
	if err != nil || d < 0 {
		return 0, false, fmt.Errorf("%s: %q is not a duration", f.Key, clipString(f.Value))
	}
	return d, true, nil
}

// wholeMillis parses the digits of a whole number of milliseconds, the
// form of nearly every value, without the allocation of a failed
// strconv call on the others.
func wholeMillis(s string) (int64, bool) {
	const maxMillis = int64(1<<63-1) / int64(time.Millisecond)
	if s == "" || len(s) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= maxMillis
}
