package adtrack

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/codec"
)

// ErrBadEvent is wrapped by every error ParseEvent returns, so a caller can
// tell a malformed record from other failures with errors.Is.
var ErrBadEvent = errors.New("bad tracker event")

// Event is one tracker event: the path it was sent to, the meta data the
// ingest tier added and the query string of the original request.
type Event struct {
	// Path is the request path as sent, for example "/t/ist".
	Path string
	// Meta is the meta data written by the ingest tier.
	Meta Meta
	// Params are the original request's query parameters. A key written
	// without '=' is present with a blank value. It is never nil for a
	// parsed event.
	Params url.Values
}

// Meta is the meta data of an event.
type Meta struct {
	// BotName names the bot that sent the request; blank means not a bot.
	BotName string
	// Country is the ISO code of the country of the request's address.
	Country string
	// Device is the kind of device: smartphone, tablet or desktop.
	Device string
	// DeviceName is the device's name, for example iPhone.
	DeviceName string
	// IPInt is the request's address as sent: the decimal integer of the
	// 32-bit IPv4 or the 128-bit IPv6 address. Blank when none was sent.
	IPInt string
	// IP is IPInt as an address; the zero Addr when IPInt is blank.
	IP netip.Addr
	// Klag is the number of seconds the event waited before it reached
	// Kafka.
	Klag int64
	// Platform is ios, android, mac, windows or blank.
	Platform string
	// TS is when the ingest tier received the event, to the second, in UTC.
	TS time.Time
	// Extra holds the meta keys not named above, so that they survive a
	// round trip; nil when there are none.
	Extra url.Values
}

// Type is the event type: the text after the last '/' of the path.
func (e Event) Type() string { return e.Path[strings.LastIndexByte(e.Path, '/')+1:] }

// Param returns the first value of the query parameter key, or "" when it
// is absent or blank.
func (e Event) Param(key string) string { return e.Params.Get(key) }

// ParseEvent parses one record of the tracker format, "<path> <meta>
// <params>". The error, which wraps ErrBadEvent, names what is wrong: a
// record that is not three fields separated by single spaces, a path without
// an event type, meta that is not form-encoded, lacks ts or holds a bad ip,
// ts or klag. A value in params that is not validly escaped is kept as sent:
// the query string comes unchanged from the tracker's clients, and one stray
// '%' must not lose the event.
func ParseEvent(b []byte) (Event, error) {
	s := string(b)
	fields := strings.Split(s, " ")
	if len(fields) != 3 {
		return Event{}, fmt.Errorf("%w: %d fields separated by single spaces, want 3 (path, meta, params)", ErrBadEvent, len(fields))
	}
	ev := Event{Path: fields[0]}
	if ev.Type() == "" {
		return Event{}, fmt.Errorf("%w: path %q has no event type after its last '/'", ErrBadEvent, clip(ev.Path))
	}
	meta, err := parseMeta(fields[1])
	if err != nil {
		return Event{}, fmt.Errorf("%w: meta: %w", ErrBadEvent, err)
	}
	ev.Meta = meta
	ev.Params = parseParams(fields[2])
	return ev, nil
}

func parseMeta(s string) (Meta, error) {
	var m Meta
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if k == "" && v == "" {
			continue
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			return Meta{}, fmt.Errorf("key %q is not escaped validly", clip(k))
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return Meta{}, fmt.Errorf("%s: value %q is not escaped validly", clip(key), clip(v))
		}
		if known(key) {
			if seen[key] {
				// The ingest tier writes each key once; the first one
				// stands, as in url.Values.Get.
				continue
			}
			seen[key] = true
		}
		if err := m.set(key, val); err != nil {
			return Meta{}, err
		}
	}
	if !seen["ts"] {
		return Meta{}, errors.New("no ts")
	}
	return m, nil
}

var metaKeys = []string{"bot_name", "country", "device", "device_name", "ip", "klag", "platform", "ts"}

func known(key string) bool { return slices.Contains(metaKeys, key) }

func (m *Meta) set(key, val string) error {
	switch key {
	case "bot_name":
		m.BotName = val
	case "country":
		m.Country = val
	case "device":
		m.Device = val
	case "device_name":
		m.DeviceName = val
	case "platform":
		m.Platform = val
	case "ip":
		ip, err := parseIPInt(val)
		if err != nil {
			return fmt.Errorf("ip: %w", err)
		}
		m.IPInt, m.IP = val, ip
	case "klag":
		if val == "" {
			return nil
		}
		n, err := parseDecimal(val)
		if err != nil {
			return fmt.Errorf("klag: %w", err)
		}
		m.Klag = n
	case "ts":
		if val == "" {
			return errors.New("ts: blank, want epoch seconds")
		}
		n, err := parseDecimal(val)
		if err == nil && n > maxTS {
			err = fmt.Errorf("%q is after the year 9999", clip(val))
		}
		if err != nil {
			return fmt.Errorf("ts: %w", err)
		}
		m.TS = time.Unix(n, 0).UTC()
	default:
		if m.Extra == nil {
			m.Extra = url.Values{}
		}
		m.Extra[key] = append(m.Extra[key], val)
	}
	return nil
}

// maxTS is the last second of the year 9999: later times do not survive a
// round trip through time.Time.
const maxTS = 253402300799

// parseDecimal reads a non-negative decimal integer, digits only.
func parseDecimal(s string) (int64, error) {
	if !digits(s) {
		return 0, fmt.Errorf("%q is not a decimal integer", clip(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", clip(s))
	}
	return n, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxIPv4 is the largest value an IPv4 address takes as an integer. The
// ingest tier writes IPv4 addresses as such; an IPv6 address at or below it
// would lie in ::/96, which nothing routes.
var maxIPv4 = new(big.Int).SetUint64(1<<32 - 1)

// parseIPInt turns the decimal integer of an address into the address. The
// blank string is no address and no error.
func parseIPInt(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	// 39 digits hold every 128-bit value; leading zeros beyond that are
	// refused rather than parsed without limit.
	if !digits(s) || len(s) > 39 {
		return netip.Addr{}, fmt.Errorf("%q is not the decimal integer of an address", clip(s))
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.BitLen() > 128 {
		return netip.Addr{}, fmt.Errorf("%q is larger than a 128-bit address", clip(s))
	}
	if n.Cmp(maxIPv4) <= 0 {
		var a [4]byte
		n.FillBytes(a[:])
		return netip.AddrFrom4(a), nil
	}
	var a [16]byte
	n.FillBytes(a[:])
	return netip.AddrFrom16(a), nil
}

// parseParams splits a query string into its pairs, keeping their order
// per key. A pair that does not unescape is kept as sent.
func parseParams(s string) url.Values {
	v := url.Values{}
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		if k == "" && val == "" {
			continue
		}
		key := unescapeLoose(k)
		v[key] = append(v[key], unescapeLoose(val))
	}
	return v
}

func unescapeLoose(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// clip keeps error messages short when a field is large.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// AppendWire appends the event in the tracker format to b. ParseEvent of
// the result gives back an equal event. Meta keys are written in the ingest
// tier's order, extra meta keys and params sorted by key; a blank value is
// written as its bare key.
func (e Event) AppendWire(b []byte) []byte {
	b = append(b, e.Path...)
	b = append(b, ' ')
	m := e.Meta
	b = appendPair(b, "bot_name", m.BotName, false)
	b = appendPair(b, "country", m.Country, true)
	b = appendPair(b, "device", m.Device, true)
	b = appendPair(b, "device_name", m.DeviceName, true)
	b = appendPair(b, "ip", m.IPInt, true)
	b = appendPair(b, "klag", strconv.FormatInt(m.Klag, 10), true)
	b = appendPair(b, "platform", m.Platform, true)
	b = appendPair(b, "ts", strconv.FormatInt(m.TS.Unix(), 10), true)
	b = appendValues(b, m.Extra, true)
	b = append(b, ' ')
	return appendValues(b, e.Params, false)
}

// String returns the event in the tracker format.
func (e Event) String() string { return string(e.AppendWire(nil)) }

func sortedKeys(v url.Values) []string { return slices.Sorted(maps.Keys(v)) }

func appendValues(b []byte, v url.Values, sep bool) []byte {
	for _, k := range sortedKeys(v) {
		for _, val := range v[k] {
			b = appendPair(b, k, val, sep)
			sep = true
		}
	}
	return b
}

func appendPair(b []byte, k, v string, sep bool) []byte {
	if sep {
		b = append(b, '&')
	}
	b = append(b, url.QueryEscape(k)...)
	if v != "" {
		b = append(b, '=')
		b = append(b, url.QueryEscape(v)...)
	}
	return b
}

// EventCodec returns the codec of tracker events on the topics clicks and
// inapp. Decode returns ParseEvent's error for a malformed record, which the
// group's error policy then handles; Encode writes the tracker format.
func EventCodec() codec.Codec[Event] { return eventCodec{} }

type eventCodec struct{}

func (eventCodec) Encode(e Event) ([]byte, error) {
	if e.Type() == "" || strings.Contains(e.Path, " ") {
		return nil, fmt.Errorf("encode tracker event: path %q is not a path with an event type", clip(e.Path))
	}
	if e.Meta.TS.IsZero() {
		return nil, errors.New("encode tracker event: no ts")
	}
	return e.AppendWire(nil), nil
}

func (eventCodec) Decode(b []byte) (Event, error) { return ParseEvent(b) }
