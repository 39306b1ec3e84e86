package adtrack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/sluice-io/sluice/codec"
)

// The topics of the pipeline. Tracker events (clicks, inapp, unattributed,
// postback-results) are in the tracker format (EventCodec); conversions and
// postback requests are JSON.
const (
	// ClicksTopic is the stream of click events, keyed by anything: the
	// attribution group stores each click under its lookup key.
	ClicksTopic = "clicks"
	// InAppTopic is the stream of in-app events (ist, apo, pay, ...), keyed
	// by anything.
	InAppTopic = "inapp"
	// ConversionsTopic is the stream of attributed installs, "mac" events
	// (see Conversion), keyed by the network user they belong to (see
	// UserKey) so that the postbacks group stores and finds network users
	// in the task that owns their row.
	ConversionsTopic = "conversions"
	// UnattributedTopic is the stream of installs no click matched, keyed by
	// the install's identity, for audit and counting.
	UnattributedTopic = "unattributed"
	// RequestsTopic is the stream of rendered postback requests (Request
	// as JSON), keyed by network, so that one network's requests are
	// ordered and bounded apart from the others'.
	RequestsTopic = "postback-requests"
	// ResultsTopic is the stream of postback results, "pob" events (see
	// Result.Event), keyed by postback id.
	ResultsTopic = "postback-results"
	// DeadLetterTopic receives the records a group could not process
	// (malformed events among them), with headers that say why.
	DeadLetterTopic = "adtrack-dead-letters"
)

// ConversionType is the event type of an attributed install.
const ConversionType = "mac"

// Conversion is an install attributed to a click: the "mac" event.
type Conversion struct {
	// Click is the attributed click, as it was stored.
	Click Event
	// Install is the install it was attributed to.
	Install Event
	// LookupKey is the key the click was found under.
	LookupKey string
}

// wireConversion is a Conversion on the wire: both events in the tracker
// format, so that nothing of them is lost.
type wireConversion struct {
	Type      string `json:"type"`
	Click     string `json:"click"`
	Install   string `json:"install"`
	LookupKey string `json:"lookup_key"`
}

// ConversionCodec returns the codec of the conversions topic: a JSON object
// with the type "mac", the click and the install in the tracker format and
// the lookup key the click was found under.
func ConversionCodec() codec.Codec[Conversion] { return conversionCodec{} }

type conversionCodec struct{}

func (conversionCodec) Encode(c Conversion) ([]byte, error) {
	w, err := c.wire()
	if err != nil {
		return nil, fmt.Errorf("encode conversion: %w", err)
	}
	return json.Marshal(w)
}

func (conversionCodec) Decode(b []byte) (Conversion, error) {
	var w wireConversion
	if err := json.Unmarshal(b, &w); err != nil {
		return Conversion{}, fmt.Errorf("decode conversion: %w", err)
	}
	c, err := w.conversion()
	if err != nil {
		return Conversion{}, fmt.Errorf("decode conversion: %w", err)
	}
	return c, nil
}

func (c Conversion) wire() (wireConversion, error) {
	click, err := EventCodec().Encode(c.Click)
	if err != nil {
		return wireConversion{}, fmt.Errorf("click: %w", err)
	}
	install, err := EventCodec().Encode(c.Install)
	if err != nil {
		return wireConversion{}, fmt.Errorf("install: %w", err)
	}
	return wireConversion{Type: ConversionType, Click: string(click), Install: string(install), LookupKey: c.LookupKey}, nil
}

func (w wireConversion) conversion() (Conversion, error) {
	if w.Type != ConversionType {
		return Conversion{}, fmt.Errorf("type %q, want %s", clip(w.Type), ConversionType)
	}
	click, err := ParseEvent([]byte(w.Click))
	if err != nil {
		return Conversion{}, fmt.Errorf("click: %w", err)
	}
	install, err := ParseEvent([]byte(w.Install))
	if err != nil {
		return Conversion{}, fmt.Errorf("install: %w", err)
	}
	return Conversion{Click: click, Install: install, LookupKey: w.LookupKey}, nil
}

// RequestCodec returns the codec of the postback requests topic: Request as
// JSON.
func RequestCodec() codec.Codec[Request] { return codec.JSON[Request]() }

// EventID is the identity of an event: a hash of its tracker encoding, the
// same for every delivery of the event, 32 hex digits.
func EventID(e Event) string {
	sum := sha256.Sum256(e.AppendWire(nil))
	return hex.EncodeToString(sum[:16])
}

// UserKey is the key of the network user of a device for an advertiser, the
// row a store_user postback writes and a user_required postback reads:
// "user:<network>:<advertiser>:<device id>", each part escaped and the
// device id lower-cased, so that the iOS and Android spellings of one id
// meet. It is "" when the device id is blank (see BlankDeviceID): a device
// that sent none has no network user.
func UserKey(network, advertiser, deviceID string) string {
	if BlankDeviceID(deviceID) {
		return ""
	}
	return "user:" + url.QueryEscape(network) + ":" + url.QueryEscape(advertiser) + ":" + url.QueryEscape(strings.ToLower(strings.TrimSpace(deviceID)))
}

// ConversionUserKey is the key of a conversion's network user: the click's
// network and advertiser and the install's device id, else the click's.
func ConversionUserKey(c Conversion) string {
	id := c.Install.Param("adid")
	if BlankDeviceID(id) {
		id = c.Click.Param("adid")
	}
	return UserKey(c.Click.Param("network"), c.Click.Param("user_id"), id)
}
