package adtrack

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"reflect"
	"testing"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestFingerprintKeyOfTheExampleAddress(t *testing.T) {
	ev := mustParse(t, "/t/ist ip=2986884497&platform=mac&ts=1465468519 ")
	if fp := Fingerprint(ev); fp != "178.8.61.145.mac" {
		t.Fatalf("fingerprint %q", fp)
	}
	if keys := InstallLookupKeys(ev); !reflect.DeepEqual(keys, []string{"1c0cdbd7358cf020ecbb9fd8d19972cf"}) {
		t.Fatalf("keys %q", keys)
	}
}

func TestClickLookupKeyOfTheExampleClickIsTheOneItCarries(t *testing.T) {
	click := mustParse(t, exampleClick)
	if got, want := ClickLookupKey(click), click.Param("lookup_key"); got != want {
		t.Fatalf("lookup key %q, want %q", got, want)
	}
}

func TestClickLookupKeyPrefersTheDeviceID(t *testing.T) {
	click := mustParse(t, "/t/click ip=2986884497&platform=ios&ts=1 idfa_comb=ECC27E57-1605-2714-CCCC-13DC6DFB742E")
	if got, want := ClickLookupKey(click), md5hex("ecc27e57-1605-2714-cccc-13dc6dfb742e"); got != want {
		t.Fatalf("lookup key %q, want %q", got, want)
	}
	none := mustParse(t, "/t/click ts=1 idfa_comb=null")
	if got := ClickLookupKey(none); got != "" {
		t.Fatalf("lookup key of a click with no device id and no address: %q", got)
	}
}

func TestInstallLookupKeysInPriorityOrder(t *testing.T) {
	install := mustParse(t, "/t/ist ip=3160898477&platform=ios&ts=1465287056 adid=ECC27E57-1605-2714-CCCC-13DC6DFB742E")
	id := "ECC27E57-1605-2714-CCCC-13DC6DFB742E"
	lower := "ecc27e57-1605-2714-cccc-13dc6dfb742e"
	want := []string{
		md5hex(lower),
		md5hex(sha1hex(lower)),
		md5hex(md5hex(lower)),
		md5hex("188.103.123.173.ios"),
	}
	if got := InstallLookupKeys(install); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys of %s:\n%q\nwant\n%q", id, got, want)
	}
	// A click that carried the same device id is found under the first key.
	click := mustParse(t, "/t/click ts=1 idfa_comb="+id)
	if ClickLookupKey(click) != want[0] {
		t.Fatalf("click key %q is not the install's first key", ClickLookupKey(click))
	}
}

func TestBlankDeviceIDsGiveOnlyTheFingerprint(t *testing.T) {
	for _, id := range []string{"", "null", "NULL", "undefined", "Undefined", "00000000-0000-0000-0000-000000000000", "0", "-", "%200000%20"} {
		install := mustParse(t, "/t/ist ip=2986884497&platform=mac&ts=1 adid="+id)
		if id := install.Param("adid"); !BlankDeviceID(id) {
			t.Errorf("%q is not blank", id)
		}
		if got := InstallLookupKeys(install); !reflect.DeepEqual(got, []string{"1c0cdbd7358cf020ecbb9fd8d19972cf"}) {
			t.Errorf("adid %q: keys %q", id, got)
		}
	}
	for _, id := range []string{"00000000-0000-0000-0000-000000000001", "nullx", "a"} {
		if BlankDeviceID(id) {
			t.Errorf("%q is blank", id)
		}
	}
}

func TestInstallWithoutDeviceIDOrAddressHasNoKeys(t *testing.T) {
	if got := InstallLookupKeys(mustParse(t, "/t/ist platform=ios&ts=1 adid")); len(got) != 0 {
		t.Fatalf("keys %q", got)
	}
}

func TestFingerprintOfAnIPv6Address(t *testing.T) {
	ev := mustParse(t, "/t/ist ip=42540766411282592856903984951653826561&platform=android&ts=1 ")
	if fp := Fingerprint(ev); fp != "2001:db8::1.android" {
		t.Fatalf("fingerprint %q", fp)
	}
}
