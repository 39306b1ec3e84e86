package logdrain

// RFC 5424 messages as Logplex sends them:
//
//	<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID [SP STRUCTURED-DATA] [SP MSG]
//
// Logplex leaves STRUCTURED-DATA out entirely, without the NILVALUE `-` that
// RFC 5424 requires, so after MSGID this parser takes `-` as no structured
// data, a well-formed `[…]` section whose SD-IDs RFC 5424 allows (the
// registered ones, such as meta, or name@number) as structured data, and
// anything else as the start of MSG. So a Logplex MSG such as
// `[INFO] started` or `[1/2] step` stays MSG, and a malformed section is MSG
// too rather than an error: nothing of the line is lost. What is left
// ambiguous is only a MSG that begins with a well-formed element of an
// allowed SD-ID, which is read as structured data.
//
// Header fields are checked as RFC 5424 says (printable US-ASCII, the
// lengths of section 6), so control characters there are errors; MSG is
// kept byte for byte, control characters and newlines included, less the one
// trailing newline Logplex ends every frame with.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMessage is what every message error wraps, so that callers can tell a
// bad message from bad framing.
var ErrMessage = errors.New("bad syslog message")

// Message is a parsed RFC 5424 message.
type Message struct {
	// Priority is PRI: Facility*8 + Severity, 0 to 191.
	Priority int
	// Version is the syslog protocol version, 1 to 999 (1 in practice).
	Version int
	// Timestamp is the message's time; the zero time for the NILVALUE.
	Timestamp time.Time
	// Hostname is HOSTNAME; empty for the NILVALUE.
	Hostname string
	// AppName is APP-NAME ("heroku" for the router, "app" for the app's own
	// lines); empty for the NILVALUE.
	AppName string
	// ProcID is PROCID ("router", "web.1"); empty for the NILVALUE.
	ProcID string
	// MsgID is MSGID; empty for the NILVALUE.
	MsgID string
	// StructuredData is the message's SD elements in order; nil when the
	// message has none (the NILVALUE, or left out as Logplex does).
	StructuredData []SDElement
	// Msg is MSG, without the frame's trailing newline; empty when absent.
	Msg string
}

// Facility is the facility part of Priority (Priority / 8).
func (m *Message) Facility() int { return m.Priority / 8 }

// Severity is the severity part of Priority (Priority % 8).
func (m *Message) Severity() int { return m.Priority % 8 }

// SDElement is one structured-data element, `[id name="value" …]`.
type SDElement struct {
	// ID is the element's SD-ID.
	ID string
	// Params are its parameters in order, values unescaped.
	Params []SDParam
}

// SDParam is one parameter of a structured-data element.
type SDParam struct {
	// Name is the PARAM-NAME.
	Name string
	// Value is the PARAM-VALUE with its escapes (\" \\ \]) removed.
	Value string
}

// ParseMessage parses one RFC 5424 message, the bytes of one frame. Its
// error wraps ErrMessage and names the field that is wrong and where.
func ParseMessage(b []byte) (Message, error) {
	// The frame's trailing newline ends the message; it is not MSG.
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	// One string for the whole message, whose fields are substrings of it:
	// one allocation per message rather than one per field.
	p := msgParser{b: string(b)}
	m, err := p.message()
	if err != nil {
		return Message{}, fmt.Errorf("%w: %s", ErrMessage, err.Error())
	}
	return m, nil
}

// AppendMessage appends m to dst as an RFC 5424 message ending in a
// newline, the form Logplex frames: NILVALUEs for empty header fields and
// for empty structured data, which ParseMessage reads back as m.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(m.Priority), 10)
	dst = append(dst, '>')
	dst = strconv.AppendInt(dst, int64(m.Version), 10)
	dst = append(dst, ' ')
	if m.Timestamp.IsZero() {
		dst = append(dst, '-')
	} else {
		dst = m.Timestamp.AppendFormat(dst, time.RFC3339Nano)
	}
	for _, f := range [...]string{m.Hostname, m.AppName, m.ProcID, m.MsgID} {
		dst = append(dst, ' ')
		dst = appendNil(dst, f)
	}
	dst = append(dst, ' ')
	if len(m.StructuredData) == 0 {
		dst = append(dst, '-')
	}
	for _, e := range m.StructuredData {
		dst = append(dst, '[')
		dst = append(dst, e.ID...)
		for _, p := range e.Params {
			dst = append(dst, ' ')
			dst = append(dst, p.Name...)
			dst = append(dst, '=', '"')
			dst = appendEscaped(dst, p.Value)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if m.Msg != "" {
		dst = append(dst, ' ')
		dst = append(dst, m.Msg...)
	}
	return append(dst, '\n')
}

func appendNil(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return append(dst, s...)
}

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == ']' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst
}

// The lengths RFC 5424 section 6 allows.
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxSDName   = 32
)

// RFC3339 with at most six fraction digits, as RFC 5424 section 6.2.3 allows.
const maxFractionDigits = 6

type msgParser struct {
	b string
	i int
}

func (p *msgParser) message() (Message, error) {
	var m Message
	var err error
	if m.Priority, err = p.pri(); err != nil {
		return m, err
	}
	if m.Version, err = p.version(); err != nil {
		return m, err
	}
	if err = p.space("version"); err != nil {
		return m, err
	}
	if m.Timestamp, err = p.timestamp(); err != nil {
		return m, err
	}
	fields := [...]struct {
		dst   *string
		name  string
		limit int
	}{
		{&m.Hostname, "hostname", maxHostname},
		{&m.AppName, "app-name", maxAppName},
		{&m.ProcID, "procid", maxProcID},
		{&m.MsgID, "msgid", maxMsgID},
	}
	prev := "timestamp"
	for _, f := range fields {
		if err = p.space(prev); err != nil {
			return m, err
		}
		if *f.dst, err = p.header(f.name, f.limit); err != nil {
			return m, err
		}
		prev = f.name
	}
	if p.i == len(p.b) {
		return m, nil
	}
	if err = p.space("msgid"); err != nil {
		return m, err
	}
	m.StructuredData = p.structuredData()
	m.Msg = p.rest()
	return m, nil
}

func (p *msgParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: "+format, append([]any{p.i}, args...)...)
}

func (p *msgParser) rest() string { return p.b[p.i:] }

func (p *msgParser) pri() (int, error) {
	if p.i >= len(p.b) || p.b[p.i] != '<' {
		return 0, p.errorf("pri: expected '<'")
	}
	p.i++
	start := p.i
	for p.i < len(p.b) && isDigit(p.b[p.i]) && p.i-start < 3 {
		p.i++
	}
	if p.i == start {
		return 0, p.errorf("pri: expected 1 to 3 digits")
	}
	n, _ := strconv.Atoi(p.b[start:p.i])
	if n > 191 {
		return 0, p.errorf("pri: %d is out of range 0-191", n)
	}
	if p.i >= len(p.b) || p.b[p.i] != '>' {
		return 0, p.errorf("pri: expected '>'")
	}
	p.i++
	return n, nil
}

func (p *msgParser) version() (int, error) {
	start := p.i
	for p.i < len(p.b) && isDigit(p.b[p.i]) && p.i-start < 3 {
		p.i++
	}
	if p.i == start || p.b[start] == '0' {
		p.i = start
		return 0, p.errorf("version: expected 1 to 999")
	}
	n, _ := strconv.Atoi(p.b[start:p.i])
	return n, nil
}

func (p *msgParser) space(after string) error {
	if p.i >= len(p.b) || p.b[p.i] != ' ' {
		return p.errorf("expected a space after %s", after)
	}
	p.i++
	return nil
}

// token returns the bytes up to the next space or the end.
func (p *msgParser) token() string {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != ' ' {
		p.i++
	}
	return p.b[start:p.i]
}

func (p *msgParser) timestamp() (time.Time, error) {
	start := p.i
	tok := p.token()
	if tok == "-" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, tok)
	// time.Parse also takes a comma before the fraction; RFC 3339 does not.
	if err != nil || strings.IndexByte(tok, ',') >= 0 {
		p.i = start
		return time.Time{}, p.errorf("timestamp: %q is not RFC 3339", clipString(tok))
	}
	if dot := strings.IndexByte(tok, '.'); dot >= 0 {
		digits := 0
		for _, c := range []byte(tok[dot+1:]) {
			if !isDigit(c) {
				break
			}
			digits++
		}
		if digits > maxFractionDigits {
			p.i = start
			return time.Time{}, p.errorf("timestamp: more than %d fraction digits", maxFractionDigits)
		}
	}
	return t, nil
}

// header reads a header field: the NILVALUE or 1 to max printable US-ASCII
// characters.
func (p *msgParser) header(name string, limit int) (string, error) {
	start := p.i
	tok := p.token()
	if len(tok) == 0 {
		return "", p.errorf("%s: empty", name)
	}
	if len(tok) > limit {
		p.i = start
		return "", p.errorf("%s: longer than %d characters", name, limit)
	}
	for k, c := range []byte(tok) {
		if c < 33 || c > 126 {
			p.i = start + k
			return "", p.errorf("%s: character %q is not printable US-ASCII", name, c)
		}
	}
	if tok == "-" {
		return "", nil
	}
	return tok, nil
}

// structuredData reads the NILVALUE, SD elements, or nothing (Logplex),
// and the space that separates them from MSG. It is positioned just after
// the space that follows MSGID. It never fails: what is not structured data
// is MSG.
func (p *msgParser) structuredData() []SDElement {
	if p.i < len(p.b) && p.b[p.i] == '-' && (p.i+1 == len(p.b) || p.b[p.i+1] == ' ') {
		p.i++
		p.skipMsgSpace()
		return nil
	}
	start := p.i
	elems, ok := p.elements()
	if !ok || (p.i < len(p.b) && p.b[p.i] != ' ') {
		p.i = start
		return nil
	}
	p.skipMsgSpace()
	return elems
}

// registeredSDIDs are the SD-IDs registered with IANA (RFC 5424 section 7).
var registeredSDIDs = map[string]bool{"timeQuality": true, "origin": true, "meta": true}

// isSDID reports whether id may name an SD element: a registered SD-ID or
// one of the private form name@number. RFC 5424 section 6.3.2 allows no
// other, and this is what tells structured data from a Logplex MSG that
// starts with a bracket, such as `[INFO] started` or `[1/2] step`.
func isSDID(id string) bool {
	if registeredSDIDs[id] {
		return true
	}
	at := strings.IndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return false
	}
	for _, c := range []byte(id[at+1:]) {
		if !isDigit(c) && c != '.' {
			return false
		}
	}
	return true
}

func (p *msgParser) skipMsgSpace() {
	if p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
}

// elements reads one or more well-formed SD elements; ok is false when the
// bytes are not that.
func (p *msgParser) elements() (elems []SDElement, ok bool) {
	for p.i < len(p.b) && p.b[p.i] == '[' {
		p.i++
		id, ok := p.sdName()
		if !ok || !isSDID(id) {
			return nil, false
		}
		for _, e := range elems {
			if e.ID == id {
				// RFC 5424 section 6.3.2: an SD-ID appears at most once.
				return nil, false
			}
		}
		e := SDElement{ID: id}
		for p.i < len(p.b) && p.b[p.i] == ' ' {
			p.i++
			name, ok := p.sdName()
			if !ok || p.i >= len(p.b) || p.b[p.i] != '=' {
				return nil, false
			}
			p.i++
			value, ok := p.paramValue()
			if !ok {
				return nil, false
			}
			e.Params = append(e.Params, SDParam{Name: name, Value: value})
		}
		if p.i >= len(p.b) || p.b[p.i] != ']' {
			return nil, false
		}
		p.i++
		elems = append(elems, e)
	}
	return elems, len(elems) > 0
}

// sdName reads an SD-NAME: 1 to 32 printable US-ASCII characters except
// '=', space, ']' and '"'.
func (p *msgParser) sdName() (string, bool) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			break
		}
		p.i++
	}
	if n := p.i - start; n == 0 || n > maxSDName {
		return "", false
	}
	return p.b[start:p.i], true
}

// paramValue reads a quoted PARAM-VALUE. Inside it '"', '\\' and ']' must be
// escaped with a backslash; a backslash before any other character is kept,
// as RFC 5424 section 6.3.3 says.
func (p *msgParser) paramValue() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	p.i++
	start := p.i
	escaped := false
	for ; p.i < len(p.b); p.i++ {
		switch p.b[p.i] {
		case '"':
			v := p.b[start:p.i]
			p.i++
			if escaped {
				v = unescapeParam(v)
			}
			return v, true
		case ']':
			return "", false
		case '\\':
			if p.i+1 < len(p.b) && isParamEscape(p.b[p.i+1]) {
				escaped = true
				p.i++
			}
		}
	}
	return "", false
}

func isParamEscape(c byte) bool { return c == '"' || c == '\\' || c == ']' }

func unescapeParam(v string) string {
	var sb strings.Builder
	sb.Grow(len(v))
	for k := 0; k < len(v); k++ {
		if v[k] == '\\' && k+1 < len(v) && isParamEscape(v[k+1]) {
			k++
		}
		sb.WriteByte(v[k])
	}
	return sb.String()
}
