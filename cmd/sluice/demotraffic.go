package main

// The demoTraffic of `sluice demo adtrack`: stories of users who click a
// campaign link and, some of them, install the app and use it, written as
// tracker events the way the ingest tier would.

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/sluice-io/sluice/apps/adtrack"
)

// demoNetworks are the ad networks of the demo, by campaign link: links 1
// and 2 are fastads', 3 and 4 slowads', 5 and 6 brokenads'.
var demoNetworks = []string{"fastads", "slowads", "brokenads"}

// demoLinks is the number of campaign links.
const demoLinks = 6

// demoRecord is a tracker event due to be sent.
type demoRecord struct {
	at    time.Time
	topic string
	ev    adtrack.Event
	// installs is the device an install installs the app on, which then
	// sends in-app events.
	installs *demoDevice
}

// demoDevice is an installed app on a device, which sends in-app events.
type demoDevice struct {
	adid, platform, country, name string
	ip                            netip.Addr
}

// demoTraffic makes the demo's events. It is not safe for concurrent use.
type demoTraffic struct {
	rng     *rand.Rand
	pending []demoRecord
	devices []demoDevice
	n       int
}

func newDemoTraffic(seed uint64) *demoTraffic {
	return &demoTraffic{rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

// installDelay is how long after its click an install is sent: long enough
// for the click to be stored first.
const installDelay = 2 * time.Second

// next starts one story at now and returns the events due by now, of
// every story.
func (tr *demoTraffic) next(now time.Time) []demoRecord {
	tr.n++
	d := tr.newDevice()
	cl := 1 + tr.rng.IntN(demoLinks)
	switch r := tr.rng.IntN(100); {
	case r < 35: // a click with the device id, then its install
		tr.later(now, adtrack.ClicksTopic, tr.click(now, cl, d, true, "", now.Add(24*time.Hour)))
		tr.pending = append(tr.pending, demoRecord{at: now.Add(installDelay), topic: adtrack.InAppTopic,
			ev: tr.event(now.Add(installDelay), "ist", d, d.adid), installs: &d})
	case r < 50: // a click without: matched by ip and platform
		tr.later(now, adtrack.ClicksTopic, tr.click(now, cl, d, false, "", now.Add(24*time.Hour)))
		tr.later(now.Add(installDelay), adtrack.InAppTopic, tr.event(now.Add(installDelay), "ist", d, "00000000-0000-0000-0000-000000000000"))
	case r < 60: // a bot's click, never installed
		tr.later(now, adtrack.ClicksTopic, tr.click(now, cl, d, false, "Googlebot", now.Add(24*time.Hour)))
	case r < 70: // a click whose window closed half an hour ago
		tr.later(now, adtrack.ClicksTopic, tr.click(now.Add(-25*time.Hour), cl, d, true, "", now.Add(-30*time.Minute)))
		tr.later(now.Add(installDelay), adtrack.InAppTopic, tr.event(now.Add(installDelay), "ist", d, d.adid))
	case r < 78: // an install of no click: organic
		tr.later(now, adtrack.InAppTopic, tr.event(now, "ist", d, d.adid))
	default: // an installed app is used
		if len(tr.devices) == 0 {
			break
		}
		u := tr.devices[tr.rng.IntN(len(tr.devices))]
		typ := []string{"pay", "apo", "fun", "lvc", "tut"}[tr.rng.IntN(5)]
		ev := tr.event(now, typ, u, u.adid)
		if typ == "pay" {
			ev.Params.Set("price", []string{"0.99", "4.99", "19.99"}[tr.rng.IntN(3)])
			ev.Params.Set("st1", "gems")
		}
		tr.later(now, adtrack.InAppTopic, ev)
	}
	if len(tr.devices) > 1000 {
		tr.devices = tr.devices[len(tr.devices)-1000:]
	}
	var due []demoRecord
	rest := tr.pending[:0]
	for _, r := range tr.pending {
		if r.at.After(now) {
			rest = append(rest, r)
		} else {
			due = append(due, r)
			if r.installs != nil {
				tr.devices = append(tr.devices, *r.installs)
			}
		}
	}
	tr.pending = rest
	return due
}

func (tr *demoTraffic) later(at time.Time, topic string, ev adtrack.Event) {
	tr.pending = append(tr.pending, demoRecord{at: at, topic: topic, ev: ev})
}

func (tr *demoTraffic) newDevice() demoDevice {
	d := demoDevice{
		ip:      netip.AddrFrom4([4]byte{byte(80 + tr.rng.IntN(100)), byte(tr.rng.IntN(256)), byte(tr.rng.IntN(256)), byte(1 + tr.rng.IntN(254))}),
		country: []string{"DE", "US", "FR", "BR", "JP"}[tr.rng.IntN(5)],
	}
	if tr.rng.IntN(2) == 0 {
		d.platform, d.name = "ios", "iPhone"
		d.adid = fmt.Sprintf("%08X-%04X-%04X-%04X-%012X", tr.rng.Uint32(), tr.rng.IntN(1<<16), tr.rng.IntN(1<<16), tr.rng.IntN(1<<16), tr.rng.Uint64()&(1<<48-1))
	} else {
		d.platform, d.name = "android", "Galaxy S5"
		d.adid = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", tr.rng.Uint32(), tr.rng.IntN(1<<16), tr.rng.IntN(1<<16), tr.rng.IntN(1<<16), tr.rng.Uint64()&(1<<48-1))
	}
	return d
}

func (tr *demoTraffic) meta(ts time.Time, d demoDevice) adtrack.Meta {
	b := d.ip.As4()
	ip := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	return adtrack.Meta{
		Country: d.country, Device: "smartphone", DeviceName: d.name, IP: d.ip, IPInt: strconv.FormatUint(ip, 10),
		Klag: int64(tr.rng.IntN(3)), Platform: d.platform, TS: ts.UTC().Truncate(time.Second),
	}
}

// click is a click on campaign link cl by d, with its device id or not,
// from bot (blank for a person), whose window ends at till.
func (tr *demoTraffic) click(ts time.Time, cl int, d demoDevice, withID bool, bot string, till time.Time) adtrack.Event {
	id := ""
	if withID {
		id = d.adid
	}
	p := url.Values{}
	for k, v := range map[string]string{
		"network": demoNetworks[(cl-1)/2], "campaign": "summer-" + strconv.Itoa((cl+1)/2), "campaign_link_id": strconv.Itoa(cl),
		"user_id": "1", "ad": "banner-" + strconv.Itoa(tr.rng.IntN(3)), "adgroup": "g1", "adid": id, "idfa_comb": id,
		"click": "c" + strconv.Itoa(tr.n), "partner_data": "pd" + strconv.Itoa(tr.n), "reqparams": "src=demo",
		"created_at": ts.UTC().Format(time.RFC3339), "attr_window_from": ts.UTC().Format(time.RFC3339),
		"attr_window_till": till.UTC().Format(time.RFC3339), "redirect_url": "https://apps.example/demo",
	} {
		p.Set(k, v)
	}
	ev := adtrack.Event{Path: "/t/click", Meta: tr.meta(ts, d), Params: p}
	ev.Meta.BotName = bot
	ev.Params.Set("lookup_key", adtrack.ClickLookupKey(ev))
	return ev
}

func (tr *demoTraffic) event(ts time.Time, typ string, d demoDevice, adid string) adtrack.Event {
	return adtrack.Event{Path: "/t/" + typ, Meta: tr.meta(ts, d), Params: url.Values{"adid": {adid}}}
}

// demoPostbacks are the demo's postbacks, sent to the receiver at base:
// each network is told of its conversions, fastads also of payments (of
// its users only) and of app opens on Android.
func demoPostbacks(base string) (*adtrack.Postbacks, error) {
	return adtrack.ParsePostbacks([]byte(fmt.Sprintf(`
postbacks:
  - id: fastads-install
    network: fastads
    event: mac
    user_id: 1
    store_user: true
    url: '%[1]s/fastads/install?idfa={{index .Params "adid"}}&click={{.Click.click}}&country={{.Event.Country}}'
  - id: fastads-pay
    network: fastads
    event: pay
    user_id: 1
    user_required: true
    headers:
      Content-Type: application/json
    url: '%[1]s/fastads/pay?partner={{.User.partner_data}}'
    body: '{"price":{{json .Params.price}},"item":{{json (index .Params "st1")}},"ts":{{.Event.TS}}}'
  - id: fastads-open
    network: fastads
    event: apo
    platform: android
    url: '%[1]s/fastads/open?gaid={{.Params.adid}}&ip={{.Event.IP}}'
  - id: slowads-install
    network: slowads
    event: mac
    url: '%[1]s/slowads/install?idfa={{index .Params "adid"}}&campaign={{.Click.campaign}}'
  - id: brokenads-install
    network: brokenads
    event: mac
    url: '%[1]s/brokenads/install?idfa={{index .Params "adid"}}&click={{.Click.click}}'
`, base)))
}
