package adtrack

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func loadSample(t *testing.T) *Postbacks {
	t.Helper()
	ps, err := LoadPostbacks("testdata/postbacks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func parsePostbacks(t *testing.T, text string) *Postbacks {
	t.Helper()
	ps, err := ParsePostbacks([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func ids(ps []*Postback) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestLoadPostbacksReadsTheSampleFile(t *testing.T) {
	ps := loadSample(t)
	if got := ids(ps.All()); !reflect.DeepEqual(got, []string{"applift-ist", "7games-mac", "7games-mac-other-advertiser", "7games-pay", "android-apo"}) {
		t.Fatalf("ids %q", got)
	}
	conv := ps.Get("7games-mac")
	if conv.Network != "7games" || conv.UserID != "1" || !conv.StoreUser || conv.Platform != PlatformAll || conv.Method != "GET" ||
		!reflect.DeepEqual(conv.NetCfg, map[string]string{"token": "s3cr3t", "offer": "17"}) {
		t.Errorf("7games-mac: %+v", conv)
	}
	pay := ps.Get("7games-pay")
	if pay.Method != "POST" || !pay.UserRequired || pay.Condition == "" {
		t.Errorf("7games-pay: %+v", pay)
	}
	if ps.Get("nope") != nil {
		t.Error("Get of an unknown id found a postback")
	}
}

func TestSelectPostbacksByEventPlatformNetworkAndAdvertiser(t *testing.T) {
	ps := loadSample(t)
	for _, c := range []struct {
		q    Query
		want []string
	}{
		{Query{Event: "ist", Platform: "ios"}, []string{"applift-ist"}},
		{Query{Event: "ist", Platform: "android"}, nil},
		{Query{Event: "ist", Platform: ""}, nil},
		{Query{Event: "mac", Platform: "ios", Network: "7games", Advertiser: "1"}, []string{"7games-mac"}},
		{Query{Event: "mac", Platform: "android", Network: "7games", Advertiser: "2"}, []string{"7games-mac-other-advertiser"}},
		{Query{Event: "mac", Platform: "ios", Network: "applift", Advertiser: "1"}, nil},
		{Query{Event: "mac", Platform: "ios", Advertiser: "1"}, nil},
		{Query{Event: "mac", Platform: "ios", Network: "7games"}, nil},
		{Query{Event: "pay", Platform: "android"}, []string{"7games-pay"}},
		{Query{Event: "pay", Platform: "windows"}, []string{"7games-pay"}},
		{Query{Event: "apo", Platform: "android"}, []string{"android-apo"}},
		{Query{Event: "apo", Platform: "ios"}, nil},
		{Query{Event: "fun", Platform: "ios"}, nil},
	} {
		if got := ids(ps.Select(c.q)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("select %+v: %q, want %q", c.q, got, c.want)
		}
	}
}

func TestRenderTheSpecExample(t *testing.T) {
	req, err := loadSample(t).Get("applift-ist").Render(Source{Event: mustParse(t, exampleInstall)})
	if err != nil {
		t.Fatal(err)
	}
	want := "http://localhost:8099/pix?idfa=ECC27E57-1605-2714-CCCC-13DC6DFB742E&ip=188.103.123.173&event=ist"
	if req.URL != want || req.Method != "GET" || req.Body != "" || req.PostbackID != "applift-ist" || req.Network != "applift" || len(req.ID) != 32 {
		t.Fatalf("request %+v, want URL %s", req, want)
	}
}

func TestURLTemplateValuesCannotInjectParameters(t *testing.T) {
	const evil = "x&idfa=evil /../a=b?c#d+e%"
	install := mustParse(t, "/t/ist ip=3160898477&platform=ios&ts=1 adid="+url.QueryEscape(evil))
	req, err := loadSample(t).Get("applift-ist").Render(Source{Event: install})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "localhost:8099" || u.Path != "/pix" || u.Fragment != "" || len(q) != 3 || q.Get("idfa") != evil || len(q["idfa"]) != 1 {
		t.Fatalf("url %s: host %q path %q query %v", req.URL, u.Host, u.Path, q)
	}

	// In a path too: a '/' or a space stays inside its segment.
	click := url.Values{"click": {"a/b c"}, "partner_data": {"p&q=1"}}
	req, err = loadSample(t).Get("7games-mac").Render(Source{Event: install, Click: click})
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://localhost:8099/conv/17?click=a%2Fb%20c&partner=p%26q%3D1&country=&t=s3cr3t"; req.URL != want {
		t.Fatalf("url %s, want %s", req.URL, want)
	}
}

func TestEveryActionOfAURLTemplateIsEscaped(t *testing.T) {
	ps := parsePostbacks(t, `
postbacks:
  - id: all-actions
    network: n
    event: ist
    url: 'http://h/x?if={{if true}}{{.Params.a}}{{end}}&range={{range $k, $v := .Params}}{{$v}}{{end}}&with={{with .Params.a}}{{.}}{{end}}&var={{$x := .Params.a}}{{$x}}&tpl={{template "t" .}}&lit={{"a&b"}}{{define "t"}}{{.Params.a}}{{end}}'
`)
	ev := mustParse(t, "/t/ist ts=1 a="+url.QueryEscape("1&z=2"))
	req, err := ps.Get("all-actions").Render(Source{Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	want := "http://h/x?if=1%26z%3D2&range=1%26z%3D2&with=1%26z%3D2&var=1%26z%3D2&tpl=1%26z%3D2&lit=a%26b"
	if req.URL != want {
		t.Fatalf("url\n%s\nwant\n%s", req.URL, want)
	}
}

func TestRenderBodyAndHeaders(t *testing.T) {
	pay := mustParse(t, examplePay)
	req, err := loadSample(t).Get("7games-pay").Render(Source{Event: pay, User: map[string]string{"partner_data": "fubar"}})
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URL != "https://localhost:8099/pay?adid=38400000-8CF0-11BD-B23E-10B96E40000D" ||
		req.Body != `{"price":"0.99","device":"Galaxy S5","ts":1465602000}` ||
		!reflect.DeepEqual(req.Header, map[string]string{"Content-Type": "application/json", "X-Partner": "fubar"}) {
		t.Fatalf("request %+v", req)
	}
	_, err = loadSample(t).Get("7games-pay").Render(Source{Event: pay, User: map[string]string{"partner_data": "a\r\nX-Evil: 1"}})
	if err == nil || !strings.Contains(err.Error(), `postback "7games-pay": headers.X-Partner: value`) {
		t.Fatalf("header with a line break: %v", err)
	}
}

func TestConditionDecidesWhetherAPostbackApplies(t *testing.T) {
	p := loadSample(t).Get("7games-pay")
	withPrice := Source{Event: mustParse(t, examplePay)}
	noPrice := Source{Event: mustParse(t, "/t/pay ts=1 adid=1")}
	if ok, err := p.Applies(withPrice); !ok || err != nil {
		t.Errorf("with a price: %v %v", ok, err)
	}
	if ok, err := p.Applies(noPrice); ok || err != nil {
		t.Errorf("without a price: %v %v", ok, err)
	}
	if ok, err := loadSample(t).Get("applift-ist").Applies(noPrice); !ok || err != nil {
		t.Errorf("no condition: %v %v", ok, err)
	}
	odd := parsePostbacks(t, `{"postbacks": [{"id": "odd", "network": "n", "event": "pay", "url": "http://h/", "condition": "{{.Params.adid}}"}]}`)
	if _, err := odd.Get("odd").Applies(noPrice); err == nil || !strings.Contains(err.Error(), `postback "odd": condition: gave "1", want true or false`) {
		t.Errorf("condition giving 1: %v", err)
	}
	if _, err := odd.Get("odd").Applies(Source{Event: mustParse(t, "/t/pay ts=1 ")}); err == nil || !strings.Contains(err.Error(), `postback "odd": condition:`) {
		t.Errorf("condition on a missing param: %v", err)
	}
}

func TestRenderFailureIsAPerPostbackError(t *testing.T) {
	ps := loadSample(t)
	noAdid := Source{Event: mustParse(t, "/t/ist ts=1 ")}
	if _, err := ps.Get("applift-ist").Render(noAdid); err == nil || !strings.Contains(err.Error(), `postback "applift-ist": url:`) || !strings.Contains(err.Error(), `"adid"`) {
		t.Errorf("missing param: %v", err)
	}
	// A conversion postback rendered without its click.
	if _, err := ps.Get("7games-mac").Render(noAdid); err == nil || !strings.Contains(err.Error(), `postback "7games-mac": url:`) {
		t.Errorf("missing click: %v", err)
	}
	// The other postbacks still render.
	if _, err := ps.Get("7games-mac-other-advertiser").Render(noAdid); err != nil {
		t.Errorf("other postback: %v", err)
	}
}

func TestRequestIDIsStablePerSourceAndPostback(t *testing.T) {
	ps := loadSample(t)
	ev := mustParse(t, exampleInstall)
	again := mustParse(t, exampleInstall)
	a, _ := ps.Get("applift-ist").Render(Source{Event: ev})
	b, _ := ps.Get("applift-ist").Render(Source{Event: again})
	c, _ := ps.Get("7games-mac-other-advertiser").Render(Source{Event: ev})
	d, _ := ps.Get("applift-ist").Render(Source{Event: ev, ID: "inapp/3/1200"})
	if a.ID == "" || a.ID != b.ID || a.ID == c.ID || a.ID == d.ID || d.ID != RequestID(Source{ID: "inapp/3/1200"}, "applift-ist") {
		t.Fatalf("ids %s %s %s %s", a.ID, b.ID, c.ID, d.ID)
	}
}

func TestParsePostbacksNamesThePostbackAndFieldOfEachProblem(t *testing.T) {
	_, err := LoadPostbacks("testdata/bad-postbacks.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`postback "typo" (line 2): unknown field "plattform" (line 5)`,
		`postback "wrong-platform" (line 7): platform: unknown platform "windows", want all, ios or android`,
		`postback "no-url" (line 12): url: missing`,
		`postback "bad-template" (line 15): url: template: bad-template.url:1: unclosed action`,
		`postback "typo" (line 19): id: duplicate of the postback at line 2`,
		`postback #6 (line 23): id: missing`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestParsePostbacksRefusesInvalidFields(t *testing.T) {
	const base = "postbacks:\n  - id: p\n    network: n\n"
	for _, c := range []struct{ yaml, want string }{
		{base + "    event: click\n    url: http://h/", `postback "p" (line 2): event: unknown event "click"`},
		{base + "    url: http://h/", `postback "p" (line 2): event: missing`},
		{"postbacks:\n  - id: p\n    event: ist\n    url: http://h/", `postback "p" (line 2): network: missing`},
		{base + "    event: ist\n    url: /relative", `url: "/relative" does not start with http:// or https:// and a host`},
		{base + "    event: ist\n    url: '{{.NetCfg.base}}/x'", `does not start with http://`},
		{base + "    event: ist\n    url: 'http://a{{.Params.b}}/x'", `does not start with http:// or https:// and a host written out`},
		{base + "    event: ist\n    url: 'http://a.com:{{.Params.port}}/x'", `does not start with http://`},
		{base + "    event: ist\n    url: http://h/\n    headers: {x-a: '1', X-A: '2'}", `headers.x-a: the header X-A is set twice`},
		{base + "    event: ist\n    url: http://h/?a={{.Evnt.IP}}", `url: unknown field .Evnt, want .Event, .Params, .Click, .NetCfg, .User`},
		{base + "    event: ist\n    url: http://h/?a={{.Event.Ip}}", `url: unknown field .Event.Ip, want .Event.Type`},
		{base + "    event: ist\n    url: http://h/?a={{$.Event.Ip}}", `url: unknown field .Event.Ip`},
		{base + "    event: ist\n    url: http://h/?a={{.NetCfg.key}}", `url: .NetCfg.key: netcfg has no key "key"`},
		{base + "    event: ist\n    url: http://h/?a={{nosuch .Params.a}}", `url: template: p.url:1: function "nosuch" not defined`},
		{base + "    event: ist\n    url: http://h/\n    body: '{{.Params.a'", `postback "p" (line 2): body: template`},
		{base + "    event: ist\n    url: http://h/\n    condition: '{{if}}'", `postback "p" (line 2): condition: template`},
		{base + "    event: ist\n    url: http://h/\n    headers: {'Bad Name': x}", `headers.Bad Name: "Bad Name" is not a header name`},
		{base + "    event: ist\n    url: http://h/\n    headers: {X-A: '{{.Usr.a}}'}", `headers.X-A: unknown field .Usr`},
		{base + "    event: ist\n    url: http://h/\n    method: DELETE", `method: unknown method "DELETE"`},
		{base + "    event: ist\n    url: http://h/\n    method: GET\n    body: x", `method: GET does not carry a body`},
		{base + "    event: ist\n    url: http://h/\n    store_user: true\n    user_id: 1", `store_user: only a mac postback stores users`},
		{base + "    event: ist\n    url: http://h/\n    user_required: true", `user_id: missing`},
		{base + "    event: ist\n    url: http://h/\n    user_required: maybe", `postback "p" (line 2): yaml: unmarshal errors`},
		{base + "    event: ist\n    url: http://h/\nextra: 1", `line 6: unknown field "extra", want postbacks`},
		{"postbacks: 1", `postbacks: want a list`},
		{"- a", `want a mapping with the key postbacks`},
		{"postbacks: [", `yaml:`},
	} {
		_, err := ParsePostbacks([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\ngave %v\nwant an error saying %q", c.yaml, err, c.want)
		}
	}
}

func TestParsePostbacksOfAnEmptyFileHasNone(t *testing.T) {
	for _, text := range []string{"", "postbacks:", "postbacks: []"} {
		if ps := parsePostbacks(t, text); len(ps.All()) != 0 {
			t.Errorf("%q: %d postbacks", text, len(ps.All()))
		}
	}
}
