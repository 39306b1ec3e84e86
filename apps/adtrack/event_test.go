package adtrack

import (
	"errors"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The example records of the tracker format.
const (
	exampleClick   = "/t/click bot_name&country=DE&device=desktop&device_name&ip=2986884497&klag=1&platform=mac&ts=1465468519 ad=&adgroup=&adid&attr_window_from=2016-06-09T10%3A35%3A19%2B00%3A00&attr_window_till=2016-06-10T10%3A35%3A19%2B00%3A00&campaign=fubsada&campaign_link_id=46&click=click&created_at=2016-06-09T10%3A35%3A19%2B00%3A00&idfa_comb&lookup_key=1c0cdbd7358cf020ecbb9fd8d19972cf&network=7games&partner_data=fubar&redirect_url=https%3A%2F%2Fplay.google.com%2Fstore%2Fapps%2Fdetails%3Fid%3Dadsad&reqparams=andmore%3Ddata%26someother%3Ddata&user_id=1"
	exampleInstall = "/t/ist bot_name&country=DE&device=smartphone&device_name=iPhone&ip=3160898477&klag=1&platform=ios&ts=1465287056 adid=ECC27E57-1605-2714-CCCC-13DC6DFB742E"
	examplePay     = "/t/pay bot_name&country=US&device=smartphone&device_name=Galaxy%20S5&ip=1123634956&klag=2&platform=android&ts=1465602000 adid=38400000-8CF0-11BD-B23E-10B96E40000D&price=0.99&st1=gems_small"
)

func mustParse(t *testing.T, rec string) Event {
	t.Helper()
	ev, err := ParseEvent([]byte(rec))
	if err != nil {
		t.Fatalf("parse %q: %v", rec, err)
	}
	return ev
}

func TestParseEventReadsTheExampleRecords(t *testing.T) {
	click := mustParse(t, exampleClick)
	wantMeta := Meta{
		Country: "DE", Device: "desktop", IPInt: "2986884497",
		IP: netip.MustParseAddr("178.8.61.145"), Klag: 1, Platform: "mac",
		TS: time.Unix(1465468519, 0).UTC(),
	}
	if click.Type() != "click" || !reflect.DeepEqual(click.Meta, wantMeta) {
		t.Errorf("click: type %q meta %+v, want click %+v", click.Type(), click.Meta, wantMeta)
	}
	for k, want := range map[string]string{
		"ad": "", "adid": "", "idfa_comb": "", "campaign_link_id": "46", "network": "7games",
		"attr_window_till": "2016-06-10T10:35:19+00:00",
		"redirect_url":     "https://play.google.com/store/apps/details?id=adsad",
		"reqparams":        "andmore=data&someother=data",
	} {
		if _, ok := click.Params[k]; !ok || click.Param(k) != want {
			t.Errorf("click param %s = %q (present %v), want %q", k, click.Param(k), ok, want)
		}
	}

	install := mustParse(t, exampleInstall)
	if install.Type() != "ist" || install.Meta.DeviceName != "iPhone" || install.Meta.IP.String() != "188.103.123.173" ||
		install.Param("adid") != "ECC27E57-1605-2714-CCCC-13DC6DFB742E" {
		t.Errorf("install: %+v", install)
	}

	pay := mustParse(t, examplePay)
	if pay.Type() != "pay" || pay.Meta.DeviceName != "Galaxy S5" || pay.Meta.Klag != 2 ||
		pay.Param("price") != "0.99" || pay.Meta.TS != time.Unix(1465602000, 0).UTC() {
		t.Errorf("pay: %+v", pay)
	}
}

func TestParseEventReadsEdges(t *testing.T) {
	const meta = "ts=1465287056"
	for _, c := range []struct {
		name, rec string
		check     func(Event) bool
	}{
		{"type after the last slash", "/a/b/apo " + meta + " x=1", func(e Event) bool { return e.Type() == "apo" && e.Path == "/a/b/apo" }},
		{"path without a slash", "ist " + meta + " ", func(e Event) bool { return e.Type() == "ist" }},
		{"empty params", "/t/ist " + meta + " ", func(e Event) bool { return e.Params != nil && len(e.Params) == 0 }},
		{"bare key is present and blank", "/t/ist bot_name&" + meta + " adid", func(e Event) bool {
			_, ok := e.Params["adid"]
			return ok && e.Meta.BotName == ""
		}},
		{"bot name set", "/t/ist bot_name=Googlebot&" + meta + " ", func(e Event) bool { return e.Meta.BotName == "Googlebot" }},
		{"extra meta keys kept", "/t/ist asn=3320&" + meta + "&zz=1&zz=2 ", func(e Event) bool {
			return reflect.DeepEqual(e.Meta.Extra, url.Values{"asn": {"3320"}, "zz": {"1", "2"}})
		}},
		{"extra params kept in order per key", "/t/ist " + meta + " b=2&a=1&b=3", func(e Event) bool {
			return reflect.DeepEqual(e.Params, url.Values{"a": {"1"}, "b": {"2", "3"}})
		}},
		{"blank ip is no address", "/t/ist ip&" + meta + " ", func(e Event) bool { return !e.Meta.IP.IsValid() && e.Meta.IPInt == "" }},
		{"no ip is no address", "/t/ist " + meta + " ", func(e Event) bool { return !e.Meta.IP.IsValid() }},
		{"ip zero", "/t/ist ip=0&" + meta + " ", func(e Event) bool { return e.Meta.IP.String() == "0.0.0.0" }},
		{"largest IPv4", "/t/ist ip=4294967295&" + meta + " ", func(e Event) bool { return e.Meta.IP.String() == "255.255.255.255" }},
		{"smallest IPv6 above IPv4", "/t/ist ip=4294967296&" + meta + " ", func(e Event) bool { return e.Meta.IP.String() == "::1:0:0" }},
		{"IPv6", "/t/ist ip=42540766411282592856903984951653826561&" + meta + " ", func(e Event) bool {
			return e.Meta.IP == netip.MustParseAddr("2001:db8::1") && e.Meta.IPInt == "42540766411282592856903984951653826561"
		}},
		{"largest IPv6", "/t/ist ip=340282366920938463463374607431768211455&" + meta + " ", func(e Event) bool {
			return e.Meta.IP.String() == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
		}},
		{"ip decimal kept as sent", "/t/ist ip=00016909060&" + meta + " ", func(e Event) bool { return e.Meta.IPInt == "00016909060" && e.Meta.IP.String() == "1.2.3.4" }},
		{"ts zero", "/t/ist ts=0 ", func(e Event) bool { return e.Meta.TS == time.Unix(0, 0).UTC() }},
		{"first of a repeated meta key stands", "/t/ist ts=5&ts=6 ", func(e Event) bool { return e.Meta.TS.Unix() == 5 }},
		{"blank klag is zero", "/t/ist klag&" + meta + " ", func(e Event) bool { return e.Meta.Klag == 0 }},
		{"badly escaped param kept as sent", "/t/ist " + meta + " partner=100%&x=%zz", func(e Event) bool { return e.Param("partner") == "100%" && e.Param("x") == "%zz" }},
		{"plus in params is a space", "/t/ist " + meta + " q=a+b", func(e Event) bool { return e.Param("q") == "a b" }},
		{"semicolon is part of a value", "/t/ist " + meta + " q=a;b", func(e Event) bool { return e.Param("q") == "a;b" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := mustParse(t, c.rec)
			if !c.check(ev) {
				t.Errorf("%q parsed to %+v", c.rec, ev)
			}
		})
	}
}

func TestParseEventRejectsMalformedRecordsWithTheReason(t *testing.T) {
	for _, c := range []struct{ rec, reason string }{
		{"", "1 fields separated by single spaces, want 3"},
		{"/t/ist ts=1", "2 fields"},
		{"/t/ist ts=1 a=1 b=2", "4 fields"},
		{"/t/ist  ts=1 a=1", "4 fields"},
		{"/t/ist\tts=1\ta=1", "1 fields"},
		{"/t/ ts=1 a=1", `path "/t/" has no event type`},
		{"/t/ist country=DE a=1", "meta: no ts"},
		{"/t/ist ts a=1", "meta: ts: blank"},
		{"/t/ist ts=yesterday a=1", `meta: ts: "yesterday" is not a decimal integer`},
		{"/t/ist ts=-5 a=1", `meta: ts: "-5" is not a decimal integer`},
		{"/t/ist ts=99999999999999999999 a=1", "meta: ts: \"99999999999999999999\" is out of range"},
		{"/t/ist ts=253402300800 a=1", "after the year 9999"},
		{"/t/ist ts=1&ip=1.2.3.4 a=1", `meta: ip: "1.2.3.4" is not the decimal integer of an address`},
		{"/t/ist ts=1&ip=-1 a=1", `meta: ip: "-1" is not`},
		{"/t/ist ts=1&ip=340282366920938463463374607431768211456 a=1", "larger than a 128-bit address"},
		{"/t/ist ts=1&ip=0000000000000000000000000000000000000001 a=1", "is not the decimal integer"},
		{"/t/ist ts=1&klag=fast a=1", `meta: klag: "fast" is not a decimal integer`},
		{"/t/ist ts=1&country=%zz a=1", `meta: country: value "%zz" is not escaped validly`},
		{"/t/ist t%zz=1 a=1", `meta: key "t%zz" is not escaped validly`},
	} {
		_, err := ParseEvent([]byte(c.rec))
		if err == nil || !errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("parse %q: %v, want an error saying %q", c.rec, err, c.reason)
		}
	}
}

func TestEventCodecRoundTripsTheExampleRecords(t *testing.T) {
	c := EventCodec()
	for _, rec := range []string{exampleClick, exampleInstall, examplePay} {
		ev, err := c.Decode([]byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded %q: %v", b, err)
		}
		if !reflect.DeepEqual(ev, again) {
			t.Errorf("%q re-encoded as %q parses to %+v, want %+v", rec, b, again, ev)
		}
	}
	// The install record is already in the encoder's order.
	if got := mustParse(t, exampleInstall).String(); got != exampleInstall {
		t.Errorf("install re-encoded as\n%s\nwant\n%s", got, exampleInstall)
	}
}

func TestEventCodecDecodeErrorIsTheParseError(t *testing.T) {
	_, err := EventCodec().Decode([]byte("/t/ist country=DE adid=1"))
	if !errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), "no ts") {
		t.Fatalf("decode: %v", err)
	}
}

func TestEventCodecEncodeRefusesEventsWithoutTypeOrTS(t *testing.T) {
	c := EventCodec()
	ts := Meta{TS: time.Unix(1, 0).UTC()}
	for _, ev := range []Event{
		{Path: "/t/", Meta: ts},
		{Path: "/t/a b", Meta: ts},
		{Path: "/t/ist"},
	} {
		if b, err := c.Encode(ev); err == nil {
			t.Errorf("encode %+v: %q, want an error", ev, b)
		}
	}
}
