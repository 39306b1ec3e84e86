package adtrack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// waitFor polls cond until it holds or 60 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunAttributesAnInstallAndTellsTheNetworks(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) { testRun(t, g) })
	}
}

func testRun(t *testing.T, guarantee sluice.DeliveryGuarantee) {
	brokers := startBroker(t)
	net7 := newNetwork(t, http.StatusOK)
	dead := newNetwork(t, http.StatusServiceUnavailable)
	ps := parsePostbacks(t, fmt.Sprintf(`
postbacks:
  - id: 7games-ist
    network: 7games
    event: ist
    url: "%[1]s/ist?idfa={{.Params.adid}}"
  - id: 7games-mac
    network: 7games
    event: mac
    user_id: 1
    store_user: true
    url: "%[1]s/mac?click={{.Click.click}}&country={{.Event.Country}}"
  - id: 7games-pay
    network: 7games
    event: pay
    user_id: 1
    user_required: true
    url: "%[1]s/pay?partner={{.User.partner_data}}&price={{.Params.price}}"
  - id: dead-ist
    network: deadnet
    event: ist
    url: "%[2]s/ist?idfa={{.Params.adid}}"
`, net7.URL, dead.URL))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Brokers: brokers, Postbacks: ps, StatsAddr: "127.0.0.1:0", AtLeastOnce: guarantee == sluice.AtLeastOnce, Sender: fastSender(),
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

	now := time.Now().UTC().Truncate(time.Second)
	click := testClick("46", testAdid, now.Add(-time.Minute), now.Add(24*time.Hour))
	install := testInstall(testAdid, now)
	pay := testPay(testAdid)
	pay.Meta.TS = now.Add(time.Second)
	stray := testInstall("11111111-2222-3333-4444-555555555555", now)
	stray.Meta.IPInt, stray.Meta.IP = "16909060", netip.MustParseAddr("1.2.3.4")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(topic string, ev Event) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: ev.AppendWire(nil)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(ClicksTopic, click)
	var clicks Counters
	waitFor(t, "the click counted", func() bool {
		clicks = Counters{}
		status, _ := getJSON(t, statsURL+"/clickstats/46", http.StatusOK, &clicks)
		return status == http.StatusOK && clicks["count"] == 1
	})
	produce(InAppTopic, install)
	produce(InAppTopic, stray)
	waitFor(t, "the conversion counted", func() bool {
		clicks = Counters{}
		getJSON(t, statsURL+"/clickstats/46", http.StatusOK, &clicks)
		return clicks["conversion"] == 1
	})
	// The network user is stored by now: the conversion's postback
	// stored it before the conversion's request reached the network.
	waitFor(t, "the conversion's postback", func() bool { return len(net7.requests()) >= 3 })
	produce(InAppTopic, pay)
	waitFor(t, "the payment's postback", func() bool { return len(net7.requests()) >= 4 })

	var paths []string
	for _, r := range net7.requests() {
		paths = append(paths, r.path)
	}
	slices.Sort(paths)
	want := []string{
		"/ist?idfa=11111111-2222-3333-4444-555555555555",
		"/ist?idfa=" + testAdid,
		"/mac?click=click-46&country=US",
		"/pay?partner=pd-46&price=0.99",
	}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("the network saw\n%q\nwant\n%q", paths, want)
	}
	var attribution Counters
	waitFor(t, "the attribution counted", func() bool {
		attribution = Counters{}
		getJSON(t, statsURL+"/attribution", http.StatusOK, &attribution)
		return attribution["matched"] == 1 && attribution["unmatched"] == 1
	})
	var pb Counters
	waitFor(t, "the postback results counted", func() bool {
		pb = Counters{}
		getJSON(t, statsURL+"/pbstats/7games-pay", http.StatusOK, &pb)
		return reflect.DeepEqual(pb, Counters{"count": 1, "respcode:200": 1})
	})
	// The network that is down got every attempt, and its postbacks
	// count as failed with its status.
	waitFor(t, "the failed postbacks counted", func() bool {
		pb = Counters{}
		getJSON(t, statsURL+"/pbstats/dead-ist", http.StatusOK, &pb)
		return reflect.DeepEqual(pb, Counters{"count": 2, "respcode:503": 2})
	})
	if n := len(dead.requests()); n != 2*fastSender().Attempts {
		t.Errorf("the network that is down saw %d requests, want %d", n, 2*fastSender().Attempts)
	}
	if got, want := clicks, (Counters{"count": 1, "country:DE": 1, "platform:ios": 1, "device:iPhone": 1,
		"device_type:smartphone": 1, "with_adid": 1, "conversion": 1, "conversion:country:US": 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("clickstats of 46: %v, want %v", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run stopped with %v", err)
	}
}

// TestRunWritesPostbackRequestsInTransactionsByDefault runs the pipeline
// with a zero guarantee: the requests a postback renders are written in a
// Kafka transaction, so that a postbacks task redone after a crash does
// not send a network the same postback again.
func TestRunWritesPostbackRequestsInTransactionsByDefault(t *testing.T) {
	brokers := startBroker(t)
	net7 := newNetwork(t, http.StatusOK)
	ps := parsePostbacks(t, fmt.Sprintf(`
postbacks:
  - id: 7games-ist
    network: 7games
    event: ist
    url: "%s/ist?idfa={{.Params.adid}}"
`, net7.URL))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Brokers: brokers, Postbacks: ps, StatsAddr: "127.0.0.1:0", Sender: fastSender(),
			Storage:    func(string) store.Builder { return memory.Builder() },
			StatsReady: func(net.Addr) { ready <- struct{}{} },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run stopped: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics(RequestsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	install := testInstall(testAdid, time.Now().UTC().Truncate(time.Second))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: InAppTopic, Value: install.AppendWire(nil)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetchCtx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	var rec *kgo.Record
	for rec == nil {
		fs := cl.PollFetches(fetchCtx)
		if fetchCtx.Err() != nil {
			t.Fatal("no postback request within 60s")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if rec == nil {
				rec = r
			}
		})
	}
	if !rec.Attrs.IsTransactional() {
		t.Errorf("postback request %s written outside a transaction: the pipeline is not exactly once by default", rec.Value)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run stopped with %v", err)
	}
}
