package adtrack

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// The scenario of the end-to-end tests: a scripted set of clicks, installs
// and payments, two networks, and exactly the postback requests and stats
// it must yield. The network "good" answers 200; "dead" answers 503 to
// every attempt, and can hold its requests until it is released, so that a
// test sees the other network served while one of dead's is in flight.

// The networks of the scenario; their requests are on different partitions
// of RequestsTopic (see TestScenarioNetworksAreOnDifferentPartitions).
const (
	goodNet = "good"
	deadNet = "dead"
)

// scenarioPostbacks configures a store_user conversion postback with a body
// and headers and a user_required payment postback on good, and a
// conversion postback on dead.
const scenarioPostbacks = `
postbacks:
  - id: good-mac
    network: good
    event: mac
    user_id: 1
    store_user: true
    headers:
      Content-Type: application/json
      X-Campaign: "{{.Click.campaign_link_id}}"
    url: "%[1]s/mac?cl={{.Click.campaign_link_id}}&click={{.Click.click}}&country={{.Event.Country}}"
    body: '{"adid":{{json .Params.adid}},"partner":{{json .Click.partner_data}}}'
  - id: good-pay
    network: good
    event: pay
    user_id: 1
    user_required: true
    url: "%[1]s/pay?partner={{.User.partner_data}}&price={{.Params.price}}&ip={{.Event.IP}}"
  - id: dead-mac
    network: dead
    event: mac
    url: "%[2]s/mac?cl={{.Click.campaign_link_id}}&adid={{.Params.adid}}"
`

// held is a network that records every request and answers with one
// status, holding each request until it is released.
type held struct {
	*httptest.Server
	status   int
	released chan struct{}
	once     sync.Once
	mu       sync.Mutex
	seen     []seen
}

// newHeld starts a network answering status; released means it does not
// hold requests.
func newHeld(t *testing.T, status int, released bool) *held {
	n := &held{status: status, released: make(chan struct{})}
	if released {
		n.release()
	}
	n.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		n.seen = append(n.seen, seen{r.Method, r.URL.RequestURI(), string(b), r.Header.Clone()})
		n.mu.Unlock()
		select {
		case <-n.released:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(n.status)
	}))
	t.Cleanup(func() {
		n.release()
		n.Close()
	})
	return n
}

func (n *held) release() { n.once.Do(func() { close(n.released) }) }

func (n *held) requests() []seen {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.seen)
}

// scenarioSender retries quickly, and waits long enough for an answer that
// a held request is not timed out while the test holds it.
func scenarioSender() *Sender {
	return &Sender{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, ReadTimeout: 3 * time.Minute}
}

// device ids of the scenario.
const (
	devAdid      = "A0000000-0000-0000-0000-000000000001"
	devBefore    = "A0000000-0000-0000-0000-000000000002"
	devTooEarly  = "A0000000-0000-0000-0000-000000000003"
	devAfter     = "A0000000-0000-0000-0000-000000000004"
	devTooLate   = "A0000000-0000-0000-0000-000000000005"
	devRace      = "A0000000-0000-0000-0000-000000000006"
	devUnmatched = "A0000000-0000-0000-0000-000000000007"
	devDead      = "A0000000-0000-0000-0000-000000000008"
)

// scenario is the script and what it must yield.
type scenario struct {
	clicks []Event
	// deadInstall is sent first, then installs, then pays.
	deadInstall Event
	installs    []Event
	pays        []Event
	// raceInstalls are the two installs of devRace: either may win.
	raceInstalls [2]Event
	// good are the requests good must see, but for the race's, whose
	// request id is one of raceIDs.
	good    []seen
	raceReq seen
	raceIDs [2]string
	// dead is the request dead must see, every attempt the same.
	dead  seen
	stats map[string]Counters
}

// addr is the address 10.0.0.n.
func addr(n byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, n}) }

func withAddr(ev Event, a netip.Addr) Event {
	b := a.As4()
	ev.Meta.IP, ev.Meta.IPInt = a, strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[:])), 10)
	return ev
}

// scenarioClick is a click of campaign link cl on network, named name (its
// "click" parameter), with device id adid ("" for none) from a, whose
// window ends at till.
func scenarioClick(name, cl, network, adid string, a netip.Addr, ts, till time.Time) Event {
	p := url.Values{}
	for k, v := range map[string]string{
		"network": network, "campaign": "spring", "campaign_link_id": cl, "user_id": "1",
		"ad": "ad-" + name, "adgroup": "g1", "adid": adid, "idfa_comb": adid, "click": name,
		"partner_data": "pd-" + name, "created_at": ts.Format(time.RFC3339),
		"attr_window_from": ts.Format(time.RFC3339), "attr_window_till": till.Format(time.RFC3339),
	} {
		p.Set(k, v)
	}
	ev := withAddr(Event{Path: "/t/click", Params: p, Meta: Meta{
		Country: "DE", Device: "smartphone", DeviceName: "iPhone", Platform: "ios", TS: ts.UTC(),
	}}, a)
	ev.Params.Set("lookup_key", ClickLookupKey(ev))
	return ev
}

func scenarioEvent(typ, adid string, a netip.Addr, ts time.Time) Event {
	return withAddr(Event{Path: "/t/" + typ, Params: url.Values{"adid": {adid}}, Meta: Meta{
		Country: "US", Device: "smartphone", DeviceName: "iPhone", Platform: "ios", TS: ts.UTC(),
	}}, a)
}

func scenarioPay(adid string, a netip.Addr, ts time.Time) Event {
	ev := scenarioEvent("pay", adid, a, ts)
	ev.Params.Set("price", "0.99")
	return ev
}

// newScenario scripts the scenario around the installs' time now.
func newScenario(now time.Time) *scenario {
	s := &scenario{}
	ago := now.Add(-time.Hour)
	s.clicks = []Event{
		// The device id beats the fingerprint, though the fingerprint's
		// click ends first.
		scenarioClick("adid", "adid", goodNet, devAdid, addr(1), ago, now.Add(24*time.Hour)),
		scenarioClick("fp", "fp", goodNet, "", addr(1), ago, now.Add(time.Hour)),
		// The edges of the window, each side.
		scenarioClick("before", "edge", goodNet, devBefore, addr(2), ago, now.Add(-WindowBefore)),
		scenarioClick("too-early", "edge", goodNet, devTooEarly, addr(3), ago, now.Add(-WindowBefore-time.Second)),
		scenarioClick("after", "edge", goodNet, devAfter, addr(4), ago, now.Add(WindowAfter)),
		scenarioClick("too-late", "edge", goodNet, devTooLate, addr(5), ago, now.Add(WindowAfter+time.Second)),
		// Two installs race for one click.
		scenarioClick("race", "race", goodNet, devRace, addr(6), ago, now.Add(24*time.Hour)),
		scenarioClick("dead", "dead", deadNet, devDead, addr(8), ago, now.Add(24*time.Hour)),
	}
	s.deadInstall = scenarioEvent("ist", devDead, addr(8), now)
	s.raceInstalls = [2]Event{scenarioEvent("ist", devRace, addr(6), now), scenarioEvent("ist", devRace, addr(6), now.Add(time.Second))}
	s.installs = []Event{
		scenarioEvent("ist", devAdid, addr(1), now),
		scenarioEvent("ist", devBefore, addr(2), now),
		scenarioEvent("ist", devTooEarly, addr(3), now),
		scenarioEvent("ist", devAfter, addr(4), now),
		scenarioEvent("ist", devTooLate, addr(5), now),
		s.raceInstalls[0], s.raceInstalls[1],
		scenarioEvent("ist", devUnmatched, addr(7), now),
	}
	// Only the converted device has a network user; the others' payments
	// require one and yield nothing.
	s.pays = []Event{
		scenarioPay(devUnmatched, addr(7), now.Add(time.Minute)),
		scenarioPay(devTooEarly, addr(3), now.Add(time.Minute)),
		scenarioPay(devAdid, addr(1), now.Add(time.Minute)),
	}

	mac := func(install Event, cl, name string) seen {
		return seen{
			method: http.MethodPost,
			path:   "/mac?cl=" + cl + "&click=" + name + "&country=US",
			body:   `{"adid":"` + install.Param("adid") + `","partner":"pd-` + name + `"}`,
			header: http.Header{
				"Content-Type":  {"application/json"},
				"X-Campaign":    {cl},
				RequestIDHeader: {RequestID(Source{Event: install}, "good-mac")},
			},
		}
	}
	s.good = []seen{
		mac(s.installs[0], "adid", "adid"),
		mac(s.installs[1], "edge", "before"),
		mac(s.installs[3], "edge", "after"),
		{method: http.MethodGet, path: "/pay?partner=pd-adid&price=0.99&ip=10.0.0.1",
			header: http.Header{RequestIDHeader: {RequestID(Source{Event: s.pays[2]}, "good-pay")}}},
	}
	s.raceReq = mac(s.raceInstalls[0], "race", "race")
	s.raceReq.header.Del(RequestIDHeader)
	s.raceIDs = [2]string{RequestID(Source{Event: s.raceInstalls[0]}, "good-mac"), RequestID(Source{Event: s.raceInstalls[1]}, "good-mac")}
	s.dead = seen{method: http.MethodGet, path: "/mac?cl=dead&adid=" + devDead,
		header: http.Header{RequestIDHeader: {RequestID(Source{Event: s.deadInstall}, "dead-mac")}}}

	click := func(n int64, adid bool) Counters {
		c := Counters{"count": n, "country:DE": n, "platform:ios": n, "device:iPhone": n, "device_type:smartphone": n}
		if adid {
			c["with_adid"] = n
		}
		return c
	}
	converted := func(c Counters, n int64) Counters {
		c["conversion"], c["conversion:country:US"] = n, n
		return c
	}
	s.stats = map[string]Counters{
		"/clickstats/adid": converted(click(1, true), 1),
		"/clickstats/fp":   click(1, false),
		"/clickstats/edge": converted(click(4, true), 2),
		"/clickstats/race": converted(click(1, true), 1),
		"/clickstats/dead": converted(click(1, true), 1),
		// adid, before, after, race, dead; too-early, too-late, the
		// race's loser, unmatched.
		"/attribution":      {MatchedCounter: 5, UnmatchedCounter: 4},
		"/pbstats/good-mac": {"count": 4, "respcode:200": 4},
		"/pbstats/good-pay": {"count": 1, "respcode:200": 1},
		"/pbstats/dead-mac": {"count": 1, "respcode:503": 1},
	}
	return s
}

// macRequests are the requests of network whose path is a conversion's.
func macRequests(rs []seen) int {
	n := 0
	for _, r := range rs {
		if strings.HasPrefix(r.path, "/mac?") {
			n++
		}
	}
	return n
}

// scenarioProducer sends the scenario's events.
type scenarioProducer struct {
	t  *testing.T
	cl *kgo.Client
}

func newScenarioProducer(t *testing.T, brokers []string) *scenarioProducer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &scenarioProducer{t: t, cl: cl}
}

// send produces evs to topic at once, each under a key of its own, so that
// they land on different partitions and race.
func (p *scenarioProducer) send(topic string, evs ...Event) {
	p.t.Helper()
	var recs []*kgo.Record
	for _, ev := range evs {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k-" + EventID(ev)[:8]), Value: ev.AppendWire(nil)})
	}
	if err := p.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// waitStored waits until every click is in the click store, so that the
// installs that follow find them.
func waitStored(t *testing.T, brokers []string, clicks []Event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v, err := sluice.NewView(AttributionGroup+"-table", codec.JSON[ClickRow](), sluice.Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "the clicks stored", func() bool {
		for _, c := range clicks {
			row, err := v.Get(c.Param("lookup_key"))
			if err != nil || !slices.ContainsFunc(row.Clicks, func(s StoredClick) bool { return s.ID == EventID(c) }) {
				return false
			}
		}
		return true
	})
}

// checkGood checks that good saw exactly the scenario's requests, each as
// often as allowed: once, or at least once when repeats is set (a redo of
// a request sends it again, with the same id and content).
func (s *scenario) checkGood(t *testing.T, got []seen, repeats bool) {
	t.Helper()
	want := slices.Clone(s.good)
	race := s.raceReq
	for _, r := range got {
		if id := r.header.Get(RequestIDHeader); id == s.raceIDs[0] || id == s.raceIDs[1] {
			race.header = race.header.Clone()
			race.header.Set(RequestIDHeader, id)
			break
		}
	}
	want = append(want, race)
	seenAt := map[int]int{}
	for _, r := range got {
		i := slices.IndexFunc(want, func(w seen) bool { return matches(r, w) })
		if i < 0 {
			t.Errorf("good saw an unexpected request %s %s body %q headers %v", r.method, r.path, r.body, r.header)
			continue
		}
		seenAt[i]++
	}
	for i, w := range want {
		switch n := seenAt[i]; {
		case n == 0:
			t.Errorf("good did not see %s %s body %q headers %v", w.method, w.path, w.body, w.header)
		case n > 1 && !repeats:
			t.Errorf("good saw %s %s %d times, want once", w.method, w.path, n)
		}
	}
}

// checkDead checks that every request dead saw is the scenario's, and
// that it saw at least attempts of them.
func (s *scenario) checkDead(t *testing.T, got []seen, attempts int) {
	t.Helper()
	if len(got) < attempts {
		t.Errorf("dead saw %d requests, want at least %d", len(got), attempts)
	}
	for _, r := range got {
		if !matches(r, s.dead) {
			t.Errorf("dead saw %s %s body %q headers %v, want %s %s headers %v", r.method, r.path, r.body, r.header, s.dead.method, s.dead.path, s.dead.header)
		}
	}
}

// matches reports whether r is the request w: method, path, body and the
// headers w names.
func matches(r, w seen) bool {
	if r.method != w.method || r.path != w.path || r.body != w.body {
		return false
	}
	for k, v := range w.header {
		if !reflect.DeepEqual(r.header.Values(k), v) {
			return false
		}
	}
	return true
}

// waitStats waits until the stats served at statsURL are the scenario's;
// with atLeast, the postback counters may be higher: the URL worker is at
// least once, and a request redone after a crash has its result counted
// again.
func (s *scenario) waitStats(t *testing.T, statsURL string, atLeast bool) {
	t.Helper()
	for path, want := range s.stats {
		var got Counters
		deadline := time.Now().Add(60 * time.Second)
		for {
			got = Counters{}
			if status, _ := getJSON(t, statsURL+path, http.StatusOK, &got); status == http.StatusOK && sameCounters(got, want, atLeast && strings.HasPrefix(path, "/pbstats/")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v, want %v", path, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestScenarioNetworksAreOnDifferentPartitions(t *testing.T) {
	const partitions = 10 // sluice's default
	if g, d := sluice.Murmur2.Partition(goodNet, partitions), sluice.Murmur2.Partition(deadNet, partitions); g == d {
		t.Fatalf("%s and %s are both on partition %d of %s: the test of one not delaying the other needs them apart", goodNet, deadNet, g, RequestsTopic)
	}
}

// sameCounters reports whether got has the counters of want, with the same
// counts, or with atLeast as many.
func sameCounters(got, want Counters, atLeast bool) bool {
	if !atLeast {
		return reflect.DeepEqual(got, want)
	}
	if len(got) != len(want) {
		return false
	}
	for k, n := range want {
		if got[k] < n {
			return false
		}
	}
	return true
}

// runScenario plays the scenario against a pipeline on brokers whose stats
// are at statsURL, with good and dead as the networks. It holds dead's
// first request until good has every conversion's request, so a dead
// network that delayed the others would stall the test.
func runScenario(t *testing.T, s *scenario, brokers []string, good, dead *held) {
	t.Helper()
	p := newScenarioProducer(t, brokers)
	p.send(ClicksTopic, s.clicks...)
	waitStored(t, brokers, s.clicks)
	p.send(InAppTopic, s.deadInstall)
	waitFor(t, "dead's first request", func() bool { return len(dead.requests()) >= 1 })
	p.send(InAppTopic, s.installs...)
	waitFor(t, "good's conversion requests, while dead holds one", func() bool { return macRequests(good.requests()) >= 4 })
	dead.release()
	// The network user is stored by now: a conversion's postback stores
	// it before its request is written.
	p.send(InAppTopic, s.pays...)
	waitFor(t, "good's payment request", func() bool { return len(good.requests()) >= 5 })
	waitFor(t, "dead's attempts", func() bool { return len(dead.requests()) >= scenarioSender().Attempts })
}

func TestRunYieldsExactlyTheScriptedPostbacksAndStats(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			brokers := startBroker(t)
			good := newHeld(t, http.StatusOK, true)
			dead := newHeld(t, http.StatusServiceUnavailable, false)
			ps := parsePostbacks(t, fmt.Sprintf(scenarioPostbacks, good.URL, dead.URL))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Config{
					Brokers: brokers, Postbacks: ps, StatsAddr: "127.0.0.1:0", AtLeastOnce: g == sluice.AtLeastOnce, Sender: scenarioSender(),
					Storage:    func(string) store.Builder { return memory.Builder() },
					StatsReady: func(addr net.Addr) { ready <- "http://" + addr.String() },
				})
			}()
			var statsURL string
			select {
			case statsURL = <-ready:
			case err := <-done:
				t.Fatalf("run stopped: %v", err)
			}
			s := newScenario(time.Now().UTC().Truncate(time.Second))
			runScenario(t, s, brokers, good, dead)
			s.waitStats(t, statsURL, false)
			s.checkGood(t, good.requests(), false)
			s.checkDead(t, dead.requests(), scenarioSender().Attempts)
			s.checkResults(t, brokers)
			if n := len(dead.requests()); n != scenarioSender().Attempts {
				t.Errorf("dead saw %d requests, want %d, one per attempt", n, scenarioSender().Attempts)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run stopped with %v", err)
			}
		})
	}
}

// checkResults reads ResultsTopic and checks the scenario's results: ok
// for good's postbacks, failed after every attempt for dead's, with the
// status in the error.
func (s *scenario) checkResults(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(ResultsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byID := map[string][]Result{}
	want := 0
	for _, path := range []string{"/pbstats/good-mac", "/pbstats/good-pay", "/pbstats/dead-mac"} {
		want += int(s.stats[path]["count"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for n := 0; n < want; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d results read: %v", n, want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := ParseEvent(r.Value)
			if err != nil {
				t.Fatalf("result %q: %v", r.Value, err)
			}
			res, err := ParseResult(ev)
			if err != nil {
				t.Fatalf("result %q: %v", r.Value, err)
			}
			byID[res.Request.PostbackID] = append(byID[res.Request.PostbackID], res)
			n++
		})
	}
	for id, rs := range byID {
		for _, res := range rs {
			switch id {
			case "good-mac", "good-pay":
				if res.Status != StatusOK || res.Code != http.StatusOK || res.Attempts != 1 {
					t.Errorf("%s: %s %d after %d attempts (%s), want ok 200 at once", id, res.Status, res.Code, res.Attempts, res.Error)
				}
			case "dead-mac":
				if res.Status != StatusFailed || res.Code != http.StatusServiceUnavailable || res.Attempts != scenarioSender().Attempts ||
					!strings.Contains(res.Error, "status 503") || res.Request.ID != s.dead.header.Get(RequestIDHeader) {
					t.Errorf("%s: %s %d after %d attempts (%q), request id %s, want failed 503 after %d, request id %s", id, res.Status, res.Code,
						res.Attempts, res.Error, res.Request.ID, scenarioSender().Attempts, s.dead.header.Get(RequestIDHeader))
				}
			default:
				t.Errorf("a result of postback %q", id)
			}
		}
	}
	if len(byID["dead-mac"]) != 1 || len(byID["good-mac"]) != 4 || len(byID["good-pay"]) != 1 {
		t.Errorf("results: %d of good-mac, %d of good-pay, %d of dead-mac, want 4, 1, 1", len(byID["good-mac"]), len(byID["good-pay"]), len(byID["dead-mac"]))
	}
}
