package adtrack

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"strings"
)

// BlankDeviceID reports whether a device id carries no device: empty,
// "null" or "undefined" (in any case), or only zeros and dashes, as SDKs
// send when the user has limited ad tracking.
func BlankDeviceID(id string) bool {
	id = strings.TrimSpace(id)
	if strings.EqualFold(id, "null") || strings.EqualFold(id, "undefined") {
		return true
	}
	return strings.Trim(id, "0-") == ""
}

// Fingerprint is "<dotted ip>.<platform>", the key of a device that sent no
// device id, or "" when the event has no address.
func Fingerprint(e Event) string {
	if !e.Meta.IP.IsValid() {
		return ""
	}
	return e.Meta.IP.String() + "." + e.Meta.Platform
}

// ClickLookupKey is the key a click is stored under: md5(lower(idfa_comb))
// when the click has a device id, else md5(lower(fingerprint)). It is ""
// when the click has neither.
func ClickLookupKey(click Event) string {
	if id := click.Param("idfa_comb"); !BlankDeviceID(id) {
		return hashKey(id)
	}
	if fp := Fingerprint(click); fp != "" {
		return hashKey(fp)
	}
	return ""
}

// InstallLookupKeys are the keys an install is matched to a click under, in
// priority order: its adid, sha1(lower(adid)) and md5(lower(adid)) for the
// networks that send hashed device ids, and its fingerprint; each then
// md5(lower(k)). A blank adid (see BlankDeviceID) contributes no keys, and a
// key that repeats an earlier one is left out.
func InstallLookupKeys(install Event) []string {
	var raw []string
	if id := install.Param("adid"); !BlankDeviceID(id) {
		lower := []byte(strings.ToLower(id))
		s := sha1.Sum(lower)
		m := md5.Sum(lower)
		raw = append(raw, id, hex.EncodeToString(s[:]), hex.EncodeToString(m[:]))
	}
	if fp := Fingerprint(install); fp != "" {
		raw = append(raw, fp)
	}
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		h := hashKey(k)
		if !slices.Contains(keys, h) {
			keys = append(keys, h)
		}
	}
	return keys
}

// hashKey is md5(lower(k)) in lower-case hex.
func hashKey(k string) string {
	sum := md5.Sum([]byte(strings.ToLower(k)))
	return hex.EncodeToString(sum[:])
}
