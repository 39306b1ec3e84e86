package adtrack

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Platforms a postback can be configured for.
const (
	// PlatformAll selects events of every platform.
	PlatformAll = "all"
	// PlatformIOS selects events of iOS devices.
	PlatformIOS = "ios"
	// PlatformAndroid selects events of Android devices.
	PlatformAndroid = "android"
)

// PostbackEvents are the event types a postback can be configured for: the
// in-app events, and "mac", the conversion of an attributed install.
var PostbackEvents = []string{"ist", "apo", "fun", "pay", "eor", "scs", "scc", "tut", "lvc", "step", "mac"}

// Postback is one configured postback: which events it fires for and the
// request it sends. Its fields are as read from the file, defaults filled
// in; the templates are compiled once by ParsePostbacks, so changing a
// field afterwards does not change what Render makes.
type Postback struct {
	// ID names the postback in results and statistics; unique in a file.
	ID string `yaml:"id"`
	// Network is the ad network the postback reports to.
	Network string `yaml:"network"`
	// Event is the event type it fires for, one of PostbackEvents.
	Event string `yaml:"event"`
	// Platform is all, ios or android: the platforms of the events it
	// fires for. Default all.
	Platform string `yaml:"platform"`
	// UserID is the advertiser whose events it fires for; blank means
	// every advertiser.
	UserID string `yaml:"user_id"`
	// UserRequired makes it fire only when a network user is stored for
	// (network, device id, advertiser). Default false.
	UserRequired bool `yaml:"user_required"`
	// StoreUser, on a "mac" postback, stores the network user of the
	// conversion. Default false.
	StoreUser bool `yaml:"store_user"`
	// NetCfg are the network's settings, seen by the templates as .NetCfg.
	NetCfg map[string]string `yaml:"netcfg"`
	// URL is the template of the request's URL. Every value it substitutes
	// is URL-escaped.
	URL string `yaml:"url"`
	// Method is GET, POST or PUT. Default POST when a body is set, else GET.
	Method string `yaml:"method"`
	// Body is the template of the request's body; blank means none. Values
	// are substituted as they are: use the functions urlquery or json to
	// escape them for the body's format.
	Body string `yaml:"body"`
	// Headers are templates of request headers, by name.
	Headers map[string]string `yaml:"headers"`
	// Condition is a template that must give "true" for the postback to
	// fire; "false" or blank skips it. Blank means always.
	Condition string `yaml:"condition"`

	url, body, cond *template.Template
	headers         map[string]*template.Template
}

// Postbacks is a validated set of postbacks.
type Postbacks struct {
	all []*Postback
}

// LoadPostbacks reads and validates the postback file at path. See
// ParsePostbacks.
func LoadPostbacks(path string) (*Postbacks, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("postbacks: %w", err)
	}
	ps, err := ParsePostbacks(data)
	if err != nil {
		return nil, fmt.Errorf("postbacks %s: %w", path, err)
	}
	return ps, nil
}

// ParsePostbacks parses and validates a postback file: YAML (or JSON, which
// YAML includes) with a list under the key "postbacks". Every problem is
// reported, each naming the postback's id (or its position when it has
// none) and the field: unknown fields, a missing id, network, event or url,
// a duplicate id, an unknown event, platform or method, a template that does
// not parse or refers to a field the templates do not have, and a user rule
// that lacks the advertiser.
func ParsePostbacks(data []byte) (*Postbacks, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return &Postbacks{}, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping with the key postbacks", root.Line)
	}
	var list *yaml.Node
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "postbacks" {
			errs = append(errs, fmt.Errorf("line %d: unknown field %q, want postbacks", k.Line, k.Value))
			continue
		}
		list = v
	}
	if list == nil || list.Tag == "!!null" {
		return &Postbacks{}, errors.Join(errs...)
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: postbacks: want a list", list.Line)
	}
	ps := &Postbacks{}
	lines := map[string]int{}
	for i, n := range list.Content {
		if id := nodeID(n); id != "" {
			if line, dup := lines[id]; dup {
				errs = append(errs, fmt.Errorf("postback %q (line %d): id: duplicate of the postback at line %d", id, n.Line, line))
				continue
			}
			lines[id] = n.Line
		}
		p, err := decodePostback(i, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps.all = append(ps.all, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ps, nil
}

var postbackFields = []string{"id", "network", "event", "platform", "user_id", "user_required", "store_user", "netcfg", "url", "method", "body", "headers", "condition"}

// decodePostback decodes and validates the i-th postback.
func decodePostback(i int, n *yaml.Node) (*Postback, error) {
	name := fmt.Sprintf("postback #%d (line %d)", i+1, n.Line)
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping of fields", name)
	}
	if id := nodeID(n); id != "" {
		name = fmt.Sprintf("postback %q (line %d)", id, n.Line)
	}
	var errs []error
	for j := 0; j+1 < len(n.Content); j += 2 {
		if k := n.Content[j]; !slices.Contains(postbackFields, k.Value) {
			errs = append(errs, fmt.Errorf("%s: unknown field %q (line %d)", name, k.Value, k.Line))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Postback{}
	if err := n.Decode(p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, err := range p.compile() {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	return p, errors.Join(errs...)
}

// nodeID is the id a postback's mapping sets, or "".
func nodeID(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == "id" {
			return n.Content[j+1].Value
		}
	}
	return ""
}

// urlPrefix is what a URL template must start with: a scheme and the whole
// host written out, ended by the path, query or fragment or by the end of
// the URL. Substituted values are escaped and cannot form a host, and none
// may be appended to the host's name either, where it would change it.
var urlPrefix = regexp.MustCompile(`^https?://[^/?#{}\s]+([/?#]|$)`)

// headerName is an HTTP header field name (a token of RFC 9110).
var headerName = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")

// compile checks the fields and parses the templates.
func (p *Postback) compile() []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if p.ID == "" {
		fail("id", "missing")
	}
	if p.Network == "" {
		fail("network", "missing")
	}
	switch {
	case p.Event == "":
		fail("event", "missing")
	case !slices.Contains(PostbackEvents, p.Event):
		fail("event", "unknown event %q, want one of %s", p.Event, strings.Join(PostbackEvents, ", "))
	}
	if p.Platform == "" {
		p.Platform = PlatformAll
	}
	if p.Platform != PlatformAll && p.Platform != PlatformIOS && p.Platform != PlatformAndroid {
		fail("platform", "unknown platform %q, want all, ios or android", p.Platform)
	}
	if p.StoreUser && p.Event != "mac" {
		fail("store_user", "only a mac postback stores users, this one is for %q", p.Event)
	}
	if (p.StoreUser || p.UserRequired) && p.UserID == "" {
		fail("user_id", "missing: network users are stored per advertiser")
	}
	p.Method = strings.ToUpper(p.Method)
	switch p.Method {
	case "":
		p.Method = http.MethodGet
		if p.Body != "" {
			p.Method = http.MethodPost
		}
	case http.MethodGet:
		if p.Body != "" {
			fail("method", "GET does not carry a body")
		}
	case http.MethodPost, http.MethodPut:
	default:
		fail("method", "unknown method %q, want GET, POST or PUT", p.Method)
	}

	var err error
	switch {
	case p.URL == "":
		fail("url", "missing")
	case !urlPrefix.MatchString(p.URL):
		fail("url", "%q does not start with http:// or https:// and a host written out", clip(p.URL))
	default:
		if p.url, err = p.parse("url", p.URL, true); err != nil {
			errs = append(errs, err)
		}
	}
	if p.Body != "" {
		if p.body, err = p.parse("body", p.Body, false); err != nil {
			errs = append(errs, err)
		}
	}
	if p.Condition != "" {
		if p.cond, err = p.parse("condition", p.Condition, false); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range sortedMapKeys(p.Headers) {
		field := "headers." + name
		if !headerName.MatchString(name) {
			fail(field, "%q is not a header name", name)
			continue
		}
		t, err := p.parse(field, p.Headers[name], false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.headers == nil {
			p.headers = map[string]*template.Template{}
		}
		canon := http.CanonicalHeaderKey(name)
		if _, dup := p.headers[canon]; dup {
			fail(field, "the header %s is set twice", canon)
			continue
		}
		p.headers[canon] = t
	}
	return errs
}

// Query says which event postbacks are selected for.
type Query struct {
	// Event is the event type.
	Event string
	// Platform is the event's platform; postbacks for all platforms and
	// for this one are selected.
	Platform string
	// Network selects only that network's postbacks: a conversion knows
	// the network of its click, other events do not. It applies when set,
	// and for a conversion (Event "mac") always: a conversion whose click
	// has no network tells no network.
	Network string
	// Advertiser selects only postbacks for every advertiser and for this
	// one. It applies when set, and for a conversion always: a conversion
	// whose click has no advertiser fires only the postbacks for every
	// advertiser.
	Advertiser string
}

// Select returns the postbacks configured for the query, in file order.
// Their conditions are not yet evaluated: see Postback.Applies.
func (ps *Postbacks) Select(q Query) []*Postback {
	conversion := q.Event == ConversionType
	var out []*Postback
	for _, p := range ps.all {
		switch {
		case p.Event != q.Event:
		case p.Platform != PlatformAll && p.Platform != q.Platform:
		case (conversion || q.Network != "") && p.Network != q.Network:
		case (conversion || q.Advertiser != "") && p.UserID != "" && p.UserID != q.Advertiser:
		default:
			out = append(out, p)
		}
	}
	return out
}

// All returns every postback, in file order.
func (ps *Postbacks) All() []*Postback { return slices.Clone(ps.all) }

// Get returns the postback with the id, or nil.
func (ps *Postbacks) Get(id string) *Postback {
	for _, p := range ps.all {
		if p.ID == id {
			return p
		}
	}
	return nil
}
