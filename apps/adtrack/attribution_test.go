package adtrack

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/sluicetest"
)

// t0 is when the installs of the tests happen.
var t0 = time.Date(2026, time.March, 2, 12, 0, 0, 0, time.UTC)

const (
	testAdid = "ECC27E57-1605-2714-CCCC-13DC6DFB742E"
	testIP   = "3160898477" // 188.103.123.173
)

// testClick is a click of campaign link cl on network 7games for
// advertiser 1, with device id adid (blank for none) from testIP on ios,
// received at ts, whose window ends at till.
func testClick(cl, adid string, ts, till time.Time) Event {
	p := url.Values{}
	for k, v := range map[string]string{
		"network": "7games", "campaign": "spring", "campaign_link_id": cl, "user_id": "1",
		"ad": "ad-" + cl, "adgroup": "g1", "adid": adid, "idfa_comb": adid, "click": "click-" + cl,
		"partner_data": "pd-" + cl, "reqparams": "a=b", "created_at": ts.Format(time.RFC3339),
		"attr_window_from": ts.Format(time.RFC3339), "attr_window_till": till.Format(time.RFC3339),
	} {
		p.Set(k, v)
	}
	ev := Event{Path: "/t/click", Params: p, Meta: Meta{
		Country: "DE", Device: "smartphone", DeviceName: "iPhone", IPInt: testIP,
		IP: netip.MustParseAddr("188.103.123.173"), Platform: "ios", TS: ts.UTC(),
	}}
	ev.Params.Set("lookup_key", ClickLookupKey(ev))
	return ev
}

// testInstall is an install with device id adid from testIP on ios at ts.
func testInstall(adid string, ts time.Time) Event {
	return testEvent("ist", adid, ts)
}

func testEvent(typ, adid string, ts time.Time) Event {
	return Event{Path: "/t/" + typ, Params: url.Values{"adid": {adid}}, Meta: Meta{
		Country: "US", Device: "smartphone", DeviceName: "iPhone", IPInt: testIP,
		IP: netip.MustParseAddr("188.103.123.173"), Platform: "ios", TS: ts.UTC(),
	}}
}

func newAttribution(t *testing.T, opts ...sluicetest.Option) (*Attribution, *sluicetest.Tester[ClickRow]) {
	t.Helper()
	a := DefineAttribution(AttributionConfig{})
	tt, err := sluicetest.New(a.Group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a, tt
}

// sendEvent sends ev to topic under a key of its own, stamped with the
// event's ts as a tracker's producer would.
func sendEvent(t *testing.T, h sluicetest.Harness, topic string, ev Event) {
	t.Helper()
	if err := sluicetest.Send(h, topic, "k-"+EventID(ev)[:8], ev, sluicetest.WithTimestamp(ev.Meta.TS)); err != nil {
		t.Fatal(err)
	}
}

func conversions(t *testing.T, a *Attribution, tt *sluicetest.Tester[ClickRow]) []Conversion {
	t.Helper()
	msgs, err := sluicetest.Output(tt, a.Conversions)
	if err != nil {
		t.Fatal(err)
	}
	var out []Conversion
	for _, m := range msgs {
		out = append(out, m.Value)
	}
	return out
}

func unattributed(t *testing.T, a *Attribution, tt *sluicetest.Tester[ClickRow]) []Event {
	t.Helper()
	msgs, err := sluicetest.Output(tt, a.Unattributed)
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for _, m := range msgs {
		out = append(out, m.Value)
	}
	return out
}

func clickRow(t *testing.T, tt *sluicetest.Tester[ClickRow], key string) ClickRow {
	t.Helper()
	row, _, err := tt.Row(key)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func TestAttributionMatchesByDeviceIDBeforeFingerprint(t *testing.T) {
	a, tt := newAttribution(t)
	byFingerprint := testClick("1", "", t0.Add(-2*time.Hour), t0.Add(time.Hour))
	byAdid := testClick("2", testAdid, t0.Add(-time.Hour), t0.Add(2*time.Hour))
	sendEvent(t, tt, ClicksTopic, byFingerprint)
	sendEvent(t, tt, ClicksTopic, byAdid)
	install := testInstall(testAdid, t0)
	sendEvent(t, tt, InAppTopic, install)

	convs := conversions(t, a, tt)
	if len(convs) != 1 {
		t.Fatalf("%d conversions, want 1", len(convs))
	}
	c := convs[0]
	if c.Click.Param("campaign_link_id") != "2" || c.LookupKey != byAdid.Param("lookup_key") {
		t.Errorf("install attributed to link %s under %s, want the device id's click, link 2",
			c.Click.Param("campaign_link_id"), c.LookupKey)
	}
	if c.Install.String() != install.String() || c.Click.String() != byAdid.String() {
		t.Errorf("conversion does not carry the full click and install:\n%s\n%s", c.Click, c.Install)
	}
	if row := clickRow(t, tt, byFingerprint.Param("lookup_key")); len(row.Clicks) != 1 {
		t.Errorf("the fingerprint's click was consumed too: %+v", row)
	}
	if row := clickRow(t, tt, byAdid.Param("lookup_key")); len(row.Clicks) != 0 || len(row.Claims) != 1 {
		t.Errorf("the device id's row after the match: %+v", row)
	}
	recs := tt.Records(ConversionsTopic)
	if want := UserKey("7games", "1", testAdid); string(recs[0].Key) != want {
		t.Errorf("conversion keyed %q, want the network user %q", recs[0].Key, want)
	}
}

func TestAttributionFallsBackToTheFingerprint(t *testing.T) {
	a, tt := newAttribution(t)
	sendEvent(t, tt, ClicksTopic, testClick("1", "", t0.Add(-time.Hour), t0.Add(time.Hour)))
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
	if convs := conversions(t, a, tt); len(convs) != 1 || convs[0].Click.Param("campaign_link_id") != "1" {
		t.Fatalf("conversions %+v, want the fingerprint's click", convs)
	}
}

func TestAttributionWindowEdges(t *testing.T) {
	for _, c := range []struct {
		name  string
		till  time.Time
		match bool
	}{
		{"ends 5 min before the install", t0.Add(-WindowBefore), true},
		{"ends 5 min and 1 s before the install", t0.Add(-WindowBefore - time.Second), false},
		{"ends 7 days after the install", t0.Add(WindowAfter), true},
		{"ends 7 days and 1 s after the install", t0.Add(WindowAfter + time.Second), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, tt := newAttribution(t)
			sendEvent(t, tt, ClicksTopic, testClick("1", testAdid, t0.Add(-24*time.Hour), c.till))
			sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
			convs, un := conversions(t, a, tt), unattributed(t, a, tt)
			if c.match && (len(convs) != 1 || len(un) != 0) {
				t.Fatalf("%d conversions and %d unattributed, want the click to match", len(convs), len(un))
			}
			if !c.match && (len(convs) != 0 || len(un) != 1) {
				t.Fatalf("%d conversions and %d unattributed, want no match", len(convs), len(un))
			}
		})
	}
}

func TestAttributionPrefersTheClickWhoseWindowEndsFirst(t *testing.T) {
	a, tt := newAttribution(t)
	sendEvent(t, tt, ClicksTopic, testClick("late", testAdid, t0.Add(-2*time.Hour), t0.Add(48*time.Hour)))
	sendEvent(t, tt, ClicksTopic, testClick("early", testAdid, t0.Add(-time.Hour), t0.Add(24*time.Hour)))
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
	if convs := conversions(t, a, tt); len(convs) != 1 || convs[0].Click.Param("campaign_link_id") != "early" {
		t.Fatalf("conversions %+v, want the click whose window ends first", convs)
	}
}

func TestAttributionOneClickAttributesOneInstallWhenTwoRace(t *testing.T) {
	a, tt := newAttribution(t, sluicetest.ManualCommit())
	sendEvent(t, tt, ClicksTopic, testClick("1", testAdid, t0.Add(-time.Hour), t0.Add(time.Hour)))
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	// Both installs are read before either lookup reaches the click.
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0.Add(time.Second)))
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	if convs, un := conversions(t, a, tt), unattributed(t, a, tt); len(convs) != 1 || len(un) != 1 {
		t.Fatalf("%d conversions and %d unattributed installs, want one of each", len(convs), len(un))
	}
}

func TestAttributionOfTheSameInstallDeliveredTwiceConsumesOneClick(t *testing.T) {
	a, tt := newAttribution(t)
	first := testClick("1", testAdid, t0.Add(-2*time.Hour), t0.Add(time.Hour))
	second := testClick("2", testAdid, t0.Add(-time.Hour), t0.Add(2*time.Hour))
	sendEvent(t, tt, ClicksTopic, first)
	sendEvent(t, tt, ClicksTopic, second)
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
	if convs := conversions(t, a, tt); len(convs) != 1 {
		t.Fatalf("%d conversions, want 1", len(convs))
	}
	if row := clickRow(t, tt, first.Param("lookup_key")); len(row.Clicks) != 1 || row.Clicks[0].ID != EventID(second) {
		t.Fatalf("row after two deliveries of one install: %+v, want the second click left", row)
	}
	if un := unattributed(t, a, tt); len(un) != 0 {
		t.Fatalf("the repeated install was counted unattributed: %v", un)
	}
}

func TestAttributionRedoOfALookupSendsTheSameConversionAgain(t *testing.T) {
	a, tt := newAttribution(t)
	click := testClick("1", testAdid, t0.Add(-time.Hour), t0.Add(time.Hour))
	other := testClick("2", testAdid, t0.Add(-time.Hour), t0.Add(30*time.Minute))
	sendEvent(t, tt, ClicksTopic, click)
	install := testInstall(testAdid, t0)
	sendEvent(t, tt, InAppTopic, install)
	sendEvent(t, tt, ClicksTopic, other)
	// The lookup's hop delivered again, as after a crash before its
	// offset was committed.
	key := click.Param("lookup_key")
	h := hop{Kind: hopLookup, Event: install.String(), Keys: InstallLookupKeys(install)}
	if err := sluicetest.Call(tt, a.hop, key, h); err != nil {
		t.Fatal(err)
	}
	convs := conversions(t, a, tt)
	if len(convs) != 2 || convs[1].Click.String() != click.String() || convs[0].Click.String() != click.String() {
		t.Fatalf("conversions %+v, want the first one twice", convs)
	}
	if row := clickRow(t, tt, key); len(row.Clicks) != 1 || row.Clicks[0].ID != EventID(other) {
		t.Fatalf("row after the redo: %+v, want the other click left", row)
	}
}

func TestAttributionOfAnUnmatchedInstallYieldsNoConversion(t *testing.T) {
	a, tt := newAttribution(t)
	sendEvent(t, tt, ClicksTopic, testClick("1", "AAAA-BBBB", t0.Add(-time.Hour), t0.Add(time.Hour)))
	install := testEvent("ist", testAdid, t0)
	install.Meta.IPInt, install.Meta.IP = "16909060", netip.MustParseAddr("1.2.3.4")
	sendEvent(t, tt, InAppTopic, install)
	if convs := conversions(t, a, tt); len(convs) != 0 {
		t.Fatalf("conversions %+v, want none", convs)
	}
	if un := unattributed(t, a, tt); len(un) != 1 || un[0].String() != install.String() {
		t.Fatalf("unattributed %v, want the install", un)
	}
	// No row was made for the keys the lookup visited.
	for _, k := range InstallLookupKeys(install) {
		if _, ok, _ := tt.Row(k); ok {
			t.Errorf("the lookup left a row under %s", k)
		}
	}
}

func TestAttributionIgnoresOtherInAppEvents(t *testing.T) {
	a, tt := newAttribution(t)
	sendEvent(t, tt, ClicksTopic, testClick("1", testAdid, t0.Add(-time.Hour), t0.Add(time.Hour)))
	sendEvent(t, tt, InAppTopic, testEvent("pay", testAdid, t0))
	if convs, un := conversions(t, a, tt), unattributed(t, a, tt); len(convs)+len(un) != 0 {
		t.Fatalf("a payment was attributed: %v %v", convs, un)
	}
}

func TestClickStoreKeepsOneCopyOfAClickDeliveredTwice(t *testing.T) {
	_, tt := newAttribution(t)
	click := testClick("1", testAdid, t0.Add(-time.Hour), t0.Add(time.Hour))
	sendEvent(t, tt, ClicksTopic, click)
	sendEvent(t, tt, ClicksTopic, click)
	if row := clickRow(t, tt, click.Param("lookup_key")); len(row.Clicks) != 1 {
		t.Fatalf("row %+v, want one click", row)
	}
}

func TestClickStoreDropsExpiredClicksByTimer(t *testing.T) {
	_, tt := newAttribution(t, sluicetest.Partitions(1))
	soon := testClick("soon", testAdid, t0, t0.Add(time.Hour))
	later := testClick("later", testAdid, t0, t0.Add(10*time.Hour))
	sendEvent(t, tt, ClicksTopic, soon)
	sendEvent(t, tt, ClicksTopic, later)
	key := soon.Param("lookup_key")
	deadline := t0.Add(time.Hour + WindowBefore + DefaultExpiryGrace)

	// Stream time just before the first click's deadline keeps both.
	sendEvent(t, tt, ClicksTopic, testClick("x", "", deadline.Add(-time.Second), deadline.Add(24*time.Hour)))
	if row := clickRow(t, tt, key); len(row.Clicks) != 2 {
		t.Fatalf("before the deadline the row has %d clicks, want 2", len(row.Clicks))
	}
	sendEvent(t, tt, ClicksTopic, testClick("y", "", deadline, deadline.Add(24*time.Hour)))
	if row := clickRow(t, tt, key); len(row.Clicks) != 1 || row.Clicks[0].ID != EventID(later) {
		t.Fatalf("at the deadline the row is %+v, want only the later click", row)
	}
	sendEvent(t, tt, ClicksTopic, testClick("z", "", t0.Add(20*time.Hour), t0.Add(48*time.Hour)))
	if _, ok, _ := tt.Row(key); ok {
		t.Fatal("a row whose clicks all expired is still there")
	}
}

func TestAttributionForgetsInstallsAndClaimsAfterRemember(t *testing.T) {
	_, tt := newAttribution(t, sluicetest.Partitions(1))
	click := testClick("1", testAdid, t0.Add(-time.Hour), t0.Add(time.Hour))
	sendEvent(t, tt, ClicksTopic, click)
	install := testInstall(testAdid, t0)
	sendEvent(t, tt, InAppTopic, install)
	home := "install:" + EventID(install)
	if _, ok, _ := tt.Row(home); !ok {
		t.Fatal("the install is not remembered")
	}
	later := t0.Add(DefaultRemember)
	sendEvent(t, tt, ClicksTopic, testClick("x", "", later, later.Add(time.Hour)))
	for _, k := range []string{home, click.Param("lookup_key")} {
		if row, ok, _ := tt.Row(k); ok {
			t.Errorf("row %s is still there after %v: %+v", k, DefaultRemember, row)
		}
	}
}

func TestClickStoreSendsAClickWithoutWindowToTheErrorPolicy(t *testing.T) {
	_, tt := newAttribution(t, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter(DeadLetterTopic))))
	click := testClick("1", testAdid, t0, t0.Add(time.Hour))
	click.Params.Del("attr_window_till")
	sendEvent(t, tt, ClicksTopic, click)
	if err := tt.SendRaw(ClicksTopic, "bad", []byte("not a tracker event")); err != nil {
		t.Fatal(err)
	}
	dls := tt.DeadLetters()
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dls))
	}
	for i, want := range []string{"attr_window_till", "3 (path, meta, params)"} {
		if msg, _ := dls[i].Header("sluice-error"); !strings.Contains(msg, want) {
			t.Errorf("dead letter %d: error %q, want it to name %q", i, msg, want)
		}
	}
}

func TestAttributionThroughACrashConsumesOneClick(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			a, tt := newAttribution(t, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(g)))
			first := testClick("1", testAdid, t0.Add(-2*time.Hour), t0.Add(time.Hour))
			second := testClick("2", testAdid, t0.Add(-time.Hour), t0.Add(2*time.Hour))
			sendEvent(t, tt, ClicksTopic, first)
			sendEvent(t, tt, ClicksTopic, second)
			if err := tt.Commit(); err != nil {
				t.Fatal(err)
			}
			// The install is processed, and what it wrote at least once
			// stays, but nothing is committed before the crash.
			sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
			tt.Crash()
			if err := tt.Commit(); err != nil {
				t.Fatal(err)
			}
			convs := conversions(t, a, tt)
			if len(convs) == 0 || g == sluice.ExactlyOnce && len(convs) != 1 {
				t.Fatalf("%d conversions", len(convs))
			}
			for _, c := range convs {
				if c.Click.String() != first.String() {
					t.Errorf("a conversion of link %s, want every one of the first click", c.Click.Param("campaign_link_id"))
				}
			}
			if row := clickRow(t, tt, first.Param("lookup_key")); len(row.Clicks) != 1 || row.Clicks[0].ID != EventID(second) {
				t.Fatalf("row after the crash: %+v, want the second click left", row)
			}
		})
	}
}
