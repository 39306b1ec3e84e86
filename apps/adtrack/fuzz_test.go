package adtrack

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseEvent checks that no record makes ParseEvent panic, and that an
// event it accepts is written back in a form that parses to the same event.
func FuzzParseEvent(f *testing.F) {
	for _, rec := range []string{
		exampleClick, exampleInstall, examplePay,
		"/t/ist ts=1 ",
		"/t/ist ip=42540766411282592856903984951653826561&ts=1&x=%20 a=%zz&&=&b",
		"/t/ist ts=1&ts=2&klag=3&asn=1&asn=2 a+b=c+d",
		"/t/ ts=1 a",
		"a b",
	} {
		f.Add([]byte(rec))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err != nil {
			return
		}
		wire, err := EventCodec().Encode(ev)
		if err != nil {
			t.Fatalf("encode of %q, parsed from %q: %v", ev, b, err)
		}
		again, err := ParseEvent(wire)
		if err != nil {
			t.Fatalf("%q parsed, re-encoded as %q, which does not parse: %v", b, wire, err)
		}
		if !reflect.DeepEqual(ev, again) {
			t.Fatalf("%q parsed to\n%#v\nre-encoded as %q parses to\n%#v", b, ev, wire, again)
		}
		_ = InstallLookupKeys(ev)
		_ = ClickLookupKey(ev)
	})
}

// FuzzURLTemplateEscaping checks that no value an event sends can change a
// rendered URL's host, path segments or parameters: it arrives, unescaped
// by the network, as exactly the value sent.
func FuzzURLTemplateEscaping(f *testing.F) {
	for _, v := range []string{"ECC27E57-1605-2714-CCCC-13DC6DFB742E", "x&idfa=evil", "a/b c", "../../admin?x=1#f", "%zz+", "\x00\xff", "@evil.example:80"} {
		f.Add(v)
	}
	ps, err := ParsePostbacks([]byte(`
postbacks:
  - id: p
    network: n
    event: ist
    url: "http://h.example:8099/p/{{.Params.adid}}/x?idfa={{.Params.adid}}&ip={{.Event.IP}}"
`))
	if err != nil {
		f.Fatal(err)
	}
	p := ps.Get("p")
	f.Fuzz(func(t *testing.T, v string) {
		ev, err := ParseEvent([]byte("/t/ist ip=16909060&ts=1 adid=" + url.QueryEscape(v)))
		if err != nil {
			t.Fatal(err)
		}
		req, err := p.Render(Source{Event: ev})
		if err != nil {
			t.Fatalf("render of %q: %v", v, err)
		}
		u, err := url.Parse(req.URL)
		if err != nil {
			t.Fatalf("%q rendered %q, which does not parse: %v", v, req.URL, err)
		}
		q := u.Query()
		segs := strings.Split(u.EscapedPath(), "/")
		if u.Scheme != "http" || u.Host != "h.example:8099" || u.User != nil || u.Fragment != "" || len(segs) != 4 ||
			segs[1] != "p" || segs[3] != "x" || len(q) != 2 || len(q["idfa"]) != 1 || q.Get("idfa") != v || q.Get("ip") != "1.2.3.4" {
			t.Fatalf("%q rendered %q: host %q path %q query %v", v, req.URL, u.Host, u.EscapedPath(), q)
		}
		if seg, err := url.PathUnescape(segs[2]); err != nil || seg != v {
			t.Fatalf("%q rendered %q: path segment %q unescapes to %q (%v)", v, req.URL, segs[2], seg, err)
		}
	})
}
