package adtrack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/sluicetest"
)

func newNotifier(t *testing.T, ps *Postbacks) (*Notifier, *sluicetest.Tester[NetworkUser]) {
	t.Helper()
	n := DefinePostbacks(ps)
	tt, err := sluicetest.New(n.Group)
	if err != nil {
		t.Fatal(err)
	}
	return n, tt
}

func requests(t *testing.T, n *Notifier, tt *sluicetest.Tester[NetworkUser]) []Request {
	t.Helper()
	msgs, err := sluicetest.Output(tt, n.Requests)
	if err != nil {
		t.Fatal(err)
	}
	var out []Request
	for _, m := range msgs {
		if string(m.Record.Key) != m.Value.Network {
			t.Errorf("request of %s keyed %q, want its network", m.Value.PostbackID, m.Record.Key)
		}
		out = append(out, m.Value)
	}
	return out
}

func testConversion(adid string) Conversion {
	click := testClick("46", adid, t0.Add(-time.Hour), t0.Add(time.Hour))
	return Conversion{Click: click, Install: testInstall(adid, t0), LookupKey: click.Param("lookup_key")}
}

func sendConversion(t *testing.T, tt *sluicetest.Tester[NetworkUser], c Conversion) {
	t.Helper()
	if err := sluicetest.Send(tt, ConversionsTopic, ConversionUserKey(c), c); err != nil {
		t.Fatal(err)
	}
}

func testPay(adid string) Event {
	pay := testEvent("pay", adid, t0.Add(time.Hour))
	pay.Params.Set("price", "0.99")
	return pay
}

func TestPostbacksOfAConversionRenderTheClickAndStoreTheNetworkUser(t *testing.T) {
	n, tt := newNotifier(t, loadSample(t))
	c := testConversion(testAdid)
	sendConversion(t, tt, c)
	reqs := requests(t, n, tt)
	if len(reqs) != 1 {
		t.Fatalf("requests %+v, want one of 7games-mac", reqs)
	}
	want := "http://localhost:8099/conv/17?click=click-46&partner=pd-46&country=US&t=s3cr3t"
	if r := reqs[0]; r.PostbackID != "7games-mac" || r.URL != want || r.Method != "GET" || r.ID != RequestID(Source{Event: c.Install}, "7games-mac") {
		t.Errorf("request %+v, want GET %s", r, want)
	}
	u, ok, err := tt.Row(UserKey("7games", "1", testAdid))
	if err != nil || !ok {
		t.Fatalf("no network user stored: %v", err)
	}
	if u.Network != "7games" || u.Advertiser != "1" || u.DeviceID != testAdid || u.Data["partner_data"] != "pd-46" ||
		u.Data["campaign"] != "spring" || u.Data["reqparams"] != "a=b" || u.Data["click"] != "click-46" || u.Data["ad"] != "ad-46" {
		t.Errorf("network user %+v", u)
	}
}

func TestPostbacksOfAConversionSelectTheClicksAdvertiser(t *testing.T) {
	n, tt := newNotifier(t, loadSample(t))
	c := testConversion(testAdid)
	c.Click.Params.Set("user_id", "2")
	sendConversion(t, tt, c)
	if reqs := requests(t, n, tt); len(reqs) != 1 || reqs[0].PostbackID != "7games-mac-other-advertiser" ||
		reqs[0].URL != "http://localhost:8099/conv2?ip="+testIP {
		t.Fatalf("requests %+v, want 7games-mac-other-advertiser", reqs)
	}
	if _, ok, _ := tt.Row(UserKey("7games", "2", testAdid)); ok {
		t.Error("a postback without store_user stored a network user")
	}
}

func TestPostbacksUserRequiredWithoutAStoredUserYieldsNothing(t *testing.T) {
	n, tt := newNotifier(t, loadSample(t))
	sendEvent(t, tt, InAppTopic, testPay(testAdid))
	if reqs := requests(t, n, tt); len(reqs) != 0 {
		t.Fatalf("requests %+v, want none", reqs)
	}
	if rs := tt.Records(ResultsTopic); len(rs) != 0 {
		t.Fatalf("results %v, want none", rs)
	}
}

func TestPostbacksStoreUserThenUserRequiredFires(t *testing.T) {
	n, tt := newNotifier(t, loadSample(t))
	sendConversion(t, tt, testConversion(testAdid))
	// Another spelling of the same device id finds the same user.
	pay := testPay(strings.ToLower(testAdid))
	sendEvent(t, tt, InAppTopic, pay)
	reqs := requests(t, n, tt)
	if len(reqs) != 2 {
		t.Fatalf("requests %+v, want the conversion's and the payment's", reqs)
	}
	r := reqs[1]
	wantBody := fmt.Sprintf(`{"price":"0.99","device":"iPhone","ts":%d}`, pay.Meta.TS.Unix())
	if r.PostbackID != "7games-pay" || r.Method != "POST" || r.URL != "https://localhost:8099/pay?adid="+strings.ToLower(testAdid) ||
		r.Body != wantBody || r.Header["X-Partner"] != "pd-46" || r.Header["Content-Type"] != "application/json" {
		t.Errorf("payment request %+v", r)
	}
	if r.ID != RequestID(Source{Event: pay}, "7games-pay") {
		t.Errorf("request id %s is not the event's", r.ID)
	}
}

func TestPostbacksOfInAppEventsBySelection(t *testing.T) {
	n, tt := newNotifier(t, loadSample(t))
	ios := testInstall(testAdid, t0)
	sendEvent(t, tt, InAppTopic, ios)
	android := testInstall(testAdid, t0)
	android.Meta.Platform = "android"
	sendEvent(t, tt, InAppTopic, android)
	reqs := requests(t, n, tt)
	want := "http://localhost:8099/pix?idfa=" + testAdid + "&ip=188.103.123.173&event=ist"
	if len(reqs) != 1 || reqs[0].PostbackID != "applift-ist" || reqs[0].URL != want {
		t.Fatalf("requests %+v, want applift-ist for the ios install only", reqs)
	}
}

func TestPostbacksWhoseTemplateFailsGiveAnErrorResult(t *testing.T) {
	n, tt := newNotifier(t, parsePostbacks(t, `
postbacks:
  - id: broken
    network: applift
    event: apo
    url: "http://localhost:8099/open?x={{.Params.missing}}"
  - id: working
    network: applift
    event: apo
    url: "http://localhost:8099/open?adid={{.Params.adid}}"
  - id: skipped
    network: applift
    event: apo
    condition: '{{eq .Event.Country "FR"}}'
    url: "http://localhost:8099/fr"
`))
	sendEvent(t, tt, InAppTopic, testEvent("apo", testAdid, t0))
	if reqs := requests(t, n, tt); len(reqs) != 1 || reqs[0].PostbackID != "working" {
		t.Fatalf("requests %+v, want the working postback's only", reqs)
	}
	msgs, err := sluicetest.Output(tt, n.Results)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d results, want the broken postback's", len(msgs))
	}
	res, err := ParseResult(msgs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusError || res.Request.PostbackID != "broken" || !strings.Contains(res.Error, "missing") || string(msgs[0].Record.Key) != "broken" {
		t.Fatalf("result %+v", res)
	}
}

func TestPostbacksOfAConversionWrittenUnderAnotherKeyReachTheUsersRow(t *testing.T) {
	n, tt := newNotifier(t, loadSample(t))
	c := testConversion(testAdid)
	if err := sluicetest.Send(tt, ConversionsTopic, "elsewhere", c); err != nil {
		t.Fatal(err)
	}
	if reqs := requests(t, n, tt); len(reqs) != 1 || reqs[0].PostbackID != "7games-mac" {
		t.Fatalf("requests %+v", reqs)
	}
	if _, ok, _ := tt.Row(UserKey("7games", "1", testAdid)); !ok {
		t.Fatal("the network user was not stored under its key")
	}
}
