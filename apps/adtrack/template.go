package adtrack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// The templates of a postback see one value, with these fields:
//
//	.Event   the event (TemplateEvent)
//	.Params  the event's query parameters, first value per key
//	.Click   for a conversion, the attributed click's parameters
//	.NetCfg  the postback's netcfg
//	.User    the stored network user's click data
//
// A key missing from one of these maps is an error when the template runs
// (use `index .Params "key"` for a parameter that may be absent), so a
// postback never goes out with "<no value>" in it.

// TemplateEvent is what templates see of an event as .Event.
type TemplateEvent struct {
	// Type is the event type.
	Type string
	// IP is the address in dotted (IPv4) or colon (IPv6) form; blank when
	// the event has none.
	IP string
	// IPInt is the address as the decimal integer it was sent as.
	IPInt string
	// Platform is the event's platform.
	Platform string
	// Country is the ISO code of the event's country.
	Country string
	// Device is the kind of device.
	Device string
	// DeviceName is the device's name.
	DeviceName string
	// BotName names the bot that sent the event; blank when none.
	BotName string
	// TS is when the event was received, in epoch seconds.
	TS int64
}

type templateData struct {
	Event  TemplateEvent
	Params map[string]string
	Click  map[string]string
	NetCfg map[string]string
	User   map[string]string
}

// Source is what a postback's request is made from.
type Source struct {
	// Event is the event the postback is for; for a conversion, the
	// install.
	Event Event
	// Click holds, for a conversion, the parameters of the attributed
	// click; nil otherwise.
	Click url.Values
	// User is the stored network user's click data; nil when none.
	User map[string]string
	// ID identifies the source record, so that every request made from it
	// carries the same request id, on every retry and after a crash. Blank
	// means the event's tracker encoding, which is the same for every
	// delivery of the event.
	ID string
}

// Request is a rendered postback request.
type Request struct {
	// ID is the request id, sent as X-Request-Id: the same for every
	// request made by one postback from one source, so that a network can
	// drop repeats.
	ID string
	// PostbackID is the id of the postback that made it.
	PostbackID string
	// Network is the postback's network.
	Network string
	// Method is the HTTP method.
	Method string
	// URL is the URL, every substituted value escaped.
	URL string
	// Body is the body; blank means none.
	Body string
	// Header are the configured headers, by canonical name.
	Header map[string]string
}

// escaperName is the function the URL template's every action ends in.
const escaperName = "_adtrack_urlescape"

var templateFuncs = template.FuncMap{
	escaperName: escapeURLValue,
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// escapeURLValue escapes a value for any part of a URL: as a query value,
// with a space as %20 rather than '+', which a path would keep as a plus.
func escapeURLValue(v any) string {
	return strings.ReplaceAll(url.QueryEscape(fmt.Sprint(v)), "+", "%20")
}

// parse parses one of the postback's templates. In a URL template each
// action that writes output gets the escaper appended to its pipeline, as
// html/template does, so no value can add a parameter or change the host.
func (p *Postback) parse(field, text string, escape bool) (*template.Template, error) {
	t, err := template.New(p.ID + "." + field).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if err := p.checkFields(t.Tree.Root, true); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if escape {
		for _, tt := range t.Templates() {
			if tt.Tree != nil {
				appendEscaper(tt.Tree, tt.Tree.Root)
			}
		}
	}
	return t, nil
}

func appendEscaper(tree *parse.Tree, n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			appendEscaper(tree, c)
		}
	case *parse.ActionNode:
		// An action that declares or assigns a variable writes nothing.
		if len(n.Pipe.Decl) > 0 {
			return
		}
		id := parse.NewIdentifier(escaperName).SetTree(tree).SetPos(n.Pos)
		n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos, Args: []parse.Node{id}})
	case *parse.IfNode:
		appendEscaper(tree, n.List)
		appendEscaper(tree, n.ElseList)
	case *parse.RangeNode:
		appendEscaper(tree, n.List)
		appendEscaper(tree, n.ElseList)
	case *parse.WithNode:
		appendEscaper(tree, n.List)
		appendEscaper(tree, n.ElseList)
	}
}

var templateFields = []string{"Event", "Params", "Click", "NetCfg", "User"}

var eventFields = func() []string {
	var names []string
	for f := range reflect.TypeFor[TemplateEvent]().Fields() {
		names = append(names, f.Name)
	}
	return names
}()

// checkFields refuses references to fields the templates do not have, and
// to netcfg keys the postback does not set, so that a typo fails at start
// rather than on every event. Inside range and with, where dot is another
// value, only references through $ are checked.
func (p *Postback) checkFields(n parse.Node, top bool) error {
	var err error
	var walk func(n parse.Node, top bool)
	walk = func(n parse.Node, top bool) {
		if err != nil || n == nil || reflect.ValueOf(n).IsNil() {
			return
		}
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				walk(c, top)
			}
		case *parse.ActionNode:
			walk(n.Pipe, top)
		case *parse.IfNode:
			walk(n.Pipe, top)
			walk(n.List, top)
			walk(n.ElseList, top)
		case *parse.RangeNode:
			walk(n.Pipe, top)
			walk(n.List, false)
			walk(n.ElseList, top)
		case *parse.WithNode:
			walk(n.Pipe, top)
			walk(n.List, false)
			walk(n.ElseList, top)
		case *parse.TemplateNode:
			walk(n.Pipe, top)
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				walk(c, top)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a, top)
			}
		case *parse.ChainNode:
			walk(n.Node, top)
		case *parse.FieldNode:
			if top {
				err = p.checkPath(n.Ident)
			}
		case *parse.VariableNode:
			if n.Ident[0] == "$" && len(n.Ident) > 1 {
				err = p.checkPath(n.Ident[1:])
			}
		}
	}
	walk(n, top)
	return err
}

func (p *Postback) checkPath(path []string) error {
	switch {
	case !slices.Contains(templateFields, path[0]):
		return fmt.Errorf("unknown field .%s, want .%s", path[0], strings.Join(templateFields, ", ."))
	case len(path) < 2:
	case path[0] == "Event" && !slices.Contains(eventFields, path[1]):
		return fmt.Errorf("unknown field .Event.%s, want .Event.%s", path[1], strings.Join(eventFields, ", .Event."))
	case path[0] == "NetCfg":
		if _, ok := p.NetCfg[path[1]]; !ok {
			return fmt.Errorf(".NetCfg.%s: netcfg has no key %q", path[1], path[1])
		}
	}
	return nil
}

func (p *Postback) data(src Source) templateData {
	e := src.Event
	ip := ""
	if e.Meta.IP.IsValid() {
		ip = e.Meta.IP.String()
	}
	return templateData{
		Event: TemplateEvent{
			Type: e.Type(), IP: ip, IPInt: e.Meta.IPInt, Platform: e.Meta.Platform,
			Country: e.Meta.Country, Device: e.Meta.Device, DeviceName: e.Meta.DeviceName,
			BotName: e.Meta.BotName, TS: e.Meta.TS.Unix(),
		},
		Params: firstValues(e.Params),
		Click:  firstValues(src.Click),
		NetCfg: p.NetCfg,
		User:   src.User,
	}
}

func firstValues(v url.Values) map[string]string {
	if v == nil {
		return nil
	}
	m := make(map[string]string, len(v))
	for k, vals := range v {
		if len(vals) > 0 {
			m[k] = vals[0]
		} else {
			m[k] = ""
		}
	}
	return m
}

func execute(t *template.Template, d templateData) (out string, err error) {
	// Templates call only the functions above and read maps and structs;
	// a panic would be a fault here, and must still not take a processor
	// down on one event.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("template %s: %v", t.Name(), r)
		}
	}()
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Applies evaluates the postback's condition on src: true when there is
// none or it gives "true", false when it gives "false" or nothing. Any
// other output, or a template error, is an error naming the postback.
func (p *Postback) Applies(src Source) (bool, error) {
	if p.cond == nil {
		return true, nil
	}
	out, err := execute(p.cond, p.data(src))
	if err != nil {
		return false, fmt.Errorf("postback %q: condition: %w", p.ID, err)
	}
	switch strings.TrimSpace(out) {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("postback %q: condition: gave %q, want true or false", p.ID, clip(out))
}

// Render makes the postback's request for src. A template that fails on
// the event, or a URL that does not parse, is an error naming the postback
// and the field; nothing is sent for it.
func (p *Postback) Render(src Source) (Request, error) {
	d := p.data(src)
	u, err := execute(p.url, d)
	if err != nil {
		return Request{}, fmt.Errorf("postback %q: url: %w", p.ID, err)
	}
	if parsed, err := url.Parse(u); err != nil {
		return Request{}, fmt.Errorf("postback %q: url: %w", p.ID, err)
	} else if (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return Request{}, fmt.Errorf("postback %q: url: %q is not an http or https URL with a host", p.ID, clip(u))
	}
	req := Request{ID: RequestID(src, p.ID), PostbackID: p.ID, Network: p.Network, Method: p.Method, URL: u}
	if p.body != nil {
		if req.Body, err = execute(p.body, d); err != nil {
			return Request{}, fmt.Errorf("postback %q: body: %w", p.ID, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.headers)) {
		v, err := execute(p.headers[name], d)
		if err != nil {
			return Request{}, fmt.Errorf("postback %q: headers.%s: %w", p.ID, name, err)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return Request{}, fmt.Errorf("postback %q: headers.%s: value %q holds a line break or NUL", p.ID, name, clip(v))
		}
		if req.Header == nil {
			req.Header = map[string]string{}
		}
		req.Header[name] = v
	}
	return req, nil
}

// RequestID is the request id of postback postbackID's request from src:
// a hash of the source's identity (src.ID, else the event's tracker
// encoding) and the postback id, 32 hex digits.
func RequestID(src Source, postbackID string) string {
	id := src.ID
	if id == "" {
		id = src.Event.String()
	}
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(postbackID))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func sortedMapKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
