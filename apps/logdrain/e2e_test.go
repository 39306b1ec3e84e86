package logdrain_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/store/pebble"
)

// runLogdrain runs the whole app on loopback until the test ends and
// returns the drain's and the routes view's base URLs.
func runLogdrain(t *testing.T, brokers []string, drain logdrain.DrainConfig) (drainURL, routesURL string) {
	t.Helper()
	// The state dir is made before the cleanup that stops the app is
	// registered, so that it is removed only after the app stopped.
	stateDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- logdrain.Run(ctx, logdrain.Config{
			Brokers:          brokers,
			Listen:           "127.0.0.1:0",
			RoutesAddr:       "127.0.0.1:0",
			Drain:            drain,
			Storage:          pebble.Builder(stateDir),
			Options:          []sluice.Opt{sluice.TopicDefaults(testPartitions, 1)},
			ProcessorOptions: []sluice.ProcessorOpt{sluice.CommitInterval(100 * time.Millisecond)},
			Logger:           testLogger(),
			Ready: func(d, r net.Addr) {
				ready <- [2]string{"http://" + d.String(), "http://" + r.String()}
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("logdrain stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("logdrain did not stop within 30s")
		}
	})
	select {
	case urls := <-ready:
		return urls[0], urls[1]
	case err := <-done:
		t.Fatalf("logdrain did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("logdrain did not start within 30s")
	}
	return "", ""
}

func getJSON(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: content type %q", u, ct)
	}
	return resp.StatusCode, b
}

func TestLogplexBodiesThroughTheDrainBecomeTheExpectedRouteMetrics(t *testing.T) {
	b := startBroker(t)
	drainURL, routesURL := runLogdrain(t, b.Addrs(), logdrain.DrainConfig{BasicAuth: "user:secret"})

	bodies := [][]string{
		{specRouterMsg, specAppMsg},
		{routerMsg("/foo", 5, 300, 200, "f1"), routerMsg("/bar", 1, 30, 404, "b1")},
		{
			routerMsg("/foo", 7, 200, 200, "f2"),
			`<999>1 2016-05-04T04:57:12+00:00 host heroku router - a bad frame`,
			`<158>1 2016-05-04T04:57:13+00:00 host heroku router - at=error code=H12 desc="Request timeout" method=GET path="/bar" host=a.herokuapp.com request_id=b2 fwd="2001:db8::1,10.0.0.1" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0 protocol=https`,
		},
	}
	for i, msgs := range bodies {
		a := post(t, drainURL, request{body: body(msgs...), headers: msgCount(len(msgs)), user: "user", pass: "secret"})
		if a.status != http.StatusNoContent {
			t.Fatalf("body %d: status %d %q, want 204", i, a.status, a.body)
		}
	}

	var routes []logdrain.Route
	waitFor(t, "the route metrics of every request", func() bool {
		status, raw := getJSON(t, routesURL+"/routes")
		if status != http.StatusOK {
			return false
		}
		if err := json.Unmarshal(raw, &routes); err != nil {
			t.Fatalf("routes %s: %v", raw, err)
		}
		// The minutes come from the windows topic, read apart from the
		// table's: both are in when each counts every request.
		n, inMinutes := int64(0), int64(0)
		for _, r := range routes {
			for _, c := range r.Statuses {
				n += c
			}
			for _, m := range r.Minutes {
				inMinutes += m.Count
			}
		}
		return n == 5 && inMinutes == 5
	})
	var order []string
	for _, r := range routes {
		order = append(order, r.Path)
	}
	if strings.Join(order, " ") != "/bar /foo /haiwen/seafile" {
		t.Errorf("routes in order %q, want the busiest first, ties by path", order)
	}

	// The spec's /foo, byte for byte up to the minutes.
	status, raw := getJSON(t, routesURL+"/routes/"+url.PathEscape("/foo"))
	want := `{"path":"/foo","service":{"sum":500,"count":2,"average":250.0},"connect":{"sum":12,"count":2,"average":6.0},"statuses":{"200":2},"minutes":[`
	if status != http.StatusOK || !strings.HasPrefix(string(raw), want) {
		t.Fatalf("GET /routes/%%2Ffoo: %d %s\nwant it to begin %s", status, raw, want)
	}
	var foo logdrain.Route
	if err := json.Unmarshal(raw, &foo); err != nil {
		t.Fatal(err)
	}
	var inMinutes int64
	for _, m := range foo.Minutes {
		inMinutes += m.Count
		if m.Start.Truncate(time.Minute) != m.Start || m.P50 < 198 || m.P99 > 303 {
			t.Errorf("minute %+v of /foo", m)
		}
	}
	if inMinutes != 2 {
		t.Errorf("/foo minutes %+v count %d requests, want 2", foo.Minutes, inMinutes)
	}

	status, raw = getJSON(t, routesURL+"/routes/%2Fbar")
	want = `{"path":"/bar","service":{"sum":30030,"count":2,"average":15015.0},"connect":{"sum":2,"count":2,"average":1.0},"statuses":{"404":1,"503":1},"minutes":[`
	if status != http.StatusOK || !strings.HasPrefix(string(raw), want) {
		t.Errorf("GET /routes/%%2Fbar: %d %s\nwant it to begin %s", status, raw, want)
	}
	status, raw = getJSON(t, routesURL+"/routes/%2Fhaiwen%2Fseafile")
	want = `{"path":"/haiwen/seafile","service":{"sum":166,"count":1,"average":166.0},"connect":{"sum":0,"count":1,"average":0.0},"statuses":{"200":1},"minutes":[`
	if status != http.StatusOK || !strings.HasPrefix(string(raw), want) {
		t.Errorf("GET /routes/%%2Fhaiwen%%2Fseafile: %d %s\nwant it to begin %s", status, raw, want)
	}
	if status, raw = getJSON(t, routesURL+"/routes/%2Fnowhere"); status != http.StatusNotFound || !strings.Contains(string(raw), `"error"`) {
		t.Errorf("GET /routes/%%2Fnowhere: %d %s, want 404 with a JSON error", status, raw)
	}
	rejects := consume(t, b.Addrs(), logdrain.RejectsTopic, 1)
	if k := header(rejects[0], logdrain.RejectKindHeader); k != logdrain.RejectSyslog {
		t.Errorf("reject of kind %q, want %q", k, logdrain.RejectSyslog)
	}
}
