package adtrack

import (
	"reflect"
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
