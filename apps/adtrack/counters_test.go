package adtrack

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluice-io/sluice/sluicetest"
)

func newStats(t *testing.T) *sluicetest.Tester[Counters] {
	t.Helper()
	tt, err := sluicetest.New(DefineStats().Group)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func counters(t *testing.T, tt *sluicetest.Tester[Counters], key string) Counters {
	t.Helper()
	c, _, err := tt.Row(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStatsCountClicksPerCampaignLink(t *testing.T) {
	tt := newStats(t)
	sendEvent(t, tt, ClicksTopic, testClick("46", testAdid, t0, t0.Add(time.Hour)))
	bot := testClick("46", "", t0.Add(time.Second), t0.Add(time.Hour))
	bot.Meta.BotName, bot.Meta.Country, bot.Meta.Platform, bot.Meta.Device, bot.Meta.DeviceName = "googlebot", "FR", "android", "tablet", "Galaxy Tab"
	sendEvent(t, tt, ClicksTopic, bot)
	sendEvent(t, tt, ClicksTopic, testClick("47", testAdid, t0, t0.Add(2*time.Hour)))

	want := Counters{
		"count": 2, "country:DE": 1, "country:FR": 1, "platform:ios": 1, "platform:android": 1,
		"device:iPhone": 1, "device:Galaxy Tab": 1, "device_type:smartphone": 1, "device_type:tablet": 1,
		"botclick": 1, "with_adid": 1,
	}
	if got := counters(t, tt, ClickStatsKey("46")); !reflect.DeepEqual(got, want) {
		t.Errorf("clickstats of 46:\n%v\nwant\n%v", got, want)
	}
	if got := counters(t, tt, ClickStatsKey("47")); got["count"] != 1 {
		t.Errorf("clickstats of 47: %v", got)
	}
}

func TestStatsCountConversionsOnTheClicksCampaignLink(t *testing.T) {
	tt := newStats(t)
	c := testConversion(testAdid) // link 46, install from US
	if err := sluicetest.Send(tt, ConversionsTopic, ConversionUserKey(c), c); err != nil {
		t.Fatal(err)
	}
	if got, want := counters(t, tt, ClickStatsKey("46")), (Counters{"conversion": 1, "conversion:country:US": 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("clickstats of 46: %v, want %v", got, want)
	}
	sendEvent(t, tt, UnattributedTopic, testInstall(testAdid, t0))
	if got, want := counters(t, tt, AttributionStatsKey), (Counters{"matched": 1, "unmatched": 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("attribution: %v, want %v", got, want)
	}
}

func TestStatsCountPostbackResultsByResponseCode(t *testing.T) {
	tt := newStats(t)
	for _, r := range []Result{
		{Request: Request{PostbackID: "pb1", ID: "a"}, Status: StatusOK, Code: 200, At: t0},
		{Request: Request{PostbackID: "pb1", ID: "b"}, Status: StatusOK, Code: 200, At: t0},
		{Request: Request{PostbackID: "pb1", ID: "c"}, Status: StatusMissingParameter, Code: 400, At: t0},
		{Request: Request{PostbackID: "pb2"}, Status: StatusError, Error: "no such key", At: t0},
	} {
		if err := sluicetest.Send(tt, ResultsTopic, r.Request.PostbackID, r.Event()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := counters(t, tt, PostbackStatsKey("pb1")), (Counters{"count": 3, "respcode:200": 2, "respcode:400": 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("pbstats of pb1: %v, want %v", got, want)
	}
	if got, want := counters(t, tt, PostbackStatsKey("pb2")), (Counters{"count": 1, "respcode:0": 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("pbstats of pb2: %v, want %v", got, want)
	}
}
