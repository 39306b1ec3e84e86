package adtrack

import "testing"

// A conversion tells the network of its click and no other: a click
// without a network fires no conversion postback, and one without an
// advertiser fires only those configured for every advertiser.
func TestPostbacksOfAConversionWhoseClickLacksNetworkOrAdvertiserTellNoOtherNetwork(t *testing.T) {
	ps := parsePostbacks(t, `
postbacks:
  - id: a-mac
    network: a
    event: mac
    user_id: 1
    url: "http://a.example/mac?adid={{.Params.adid}}"
  - id: b-mac-every-advertiser
    network: b
    event: mac
    url: "http://b.example/mac?adid={{.Params.adid}}"
`)
	for _, c := range []struct {
		name, network, advertiser string
		want                      []string
	}{
		{"no network", "", "1", nil},
		{"no advertiser", "b", "", []string{"b-mac-every-advertiser"}},
		{"no advertiser, a network of one advertiser", "a", "", nil},
		{"neither", "", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, tt := newNotifier(t, ps)
			conv := testConversion(testAdid)
			conv.Click.Params.Set("network", c.network)
			conv.Click.Params.Set("user_id", c.advertiser)
			sendConversion(t, tt, conv)
			var got []string
			for _, r := range requests(t, n, tt) {
				got = append(got, r.PostbackID)
			}
			if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
				t.Fatalf("requests of %v, want %v", got, c.want)
			}
		})
	}
}

// A "mac" event on the in-app topic is no conversion of the attribution:
// it has no click, hence no network, and fires no conversion postback.
func TestPostbacksOfAMacEventOnTheInAppTopicTellNoNetwork(t *testing.T) {
	ps := parsePostbacks(t, `
postbacks:
  - id: b-mac-every-advertiser
    network: b
    event: mac
    url: "http://b.example/mac?adid={{.Params.adid}}"
`)
	n, tt := newNotifier(t, ps)
	sendEvent(t, tt, InAppTopic, testEvent(ConversionType, testAdid, t0))
	if reqs := requests(t, n, tt); len(reqs) != 0 {
		t.Fatalf("requests %+v, want none", reqs)
	}
}
