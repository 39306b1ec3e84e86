package logdrain_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/internal/browsertest"
	"github.com/sluice-io/sluice/store/pebble"
)

// runWithMonitor runs the whole app with its web monitor on loopback until
// the test ends and returns the drain's, the routes view's and the
// monitor's base URLs.
func runWithMonitor(t *testing.T, brokers []string) (drainURL, routesURL, monitorURL string) {
	t.Helper()
	stateDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [3]string, 1)
	done := make(chan error, 1)
	var monitor string
	go func() {
		done <- logdrain.Run(ctx, logdrain.Config{
			Brokers:          brokers,
			Listen:           "127.0.0.1:0",
			RoutesAddr:       "127.0.0.1:0",
			MonitorAddr:      "127.0.0.1:0",
			Storage:          pebble.Builder(stateDir),
			Options:          []sluice.Opt{sluice.TopicDefaults(testPartitions, 1)},
			ProcessorOptions: []sluice.ProcessorOpt{sluice.CommitInterval(100 * time.Millisecond)},
			Logger:           testLogger(),
			MonitorReady:     func(a net.Addr) { monitor = "http://" + a.String() },
			Ready: func(d, r net.Addr) {
				ready <- [3]string{"http://" + d.String(), "http://" + r.String(), monitor}
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
		return urls[0], urls[1], urls[2]
	case err := <-done:
		t.Fatalf("logdrain did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("logdrain did not start within 30s")
	}
	return "", "", ""
}

// postRoutes posts router lines of four routes: /api/orders the busiest,
// /bar the slowest (an H12 timeout of 30 s), and the spec's /foo.
func postRoutes(t *testing.T, drainURL string) {
	t.Helper()
	bodies := [][]string{
		{routerMsg("/api/orders", 1, 40, 200, "o1"), routerMsg("/api/orders", 1, 60, 201, "o2"), specRouterMsg},
		{routerMsg("/foo", 5, 300, 200, "f1"), routerMsg("/bar", 1, 30, 404, "b1"), routerMsg("/api/orders", 2, 50, 200, "o3")},
		{
			routerMsg("/foo", 7, 200, 200, "f2"),
			routerMsg("/api/orders", 1, 50, 500, "o4"),
			`<158>1 2016-05-04T04:57:13+00:00 host heroku router - at=error code=H12 desc="Request timeout" method=GET path="/bar" host=a.herokuapp.com request_id=b2 fwd="2001:db8::1" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0`,
		},
	}
	for i, msgs := range bodies {
		if a := post(t, drainURL, request{body: body(msgs...), headers: msgCount(len(msgs))}); a.status != http.StatusNoContent {
			t.Fatalf("body %d: status %d %q, want 204", i, a.status, a.body)
		}
	}
}

func TestMonitorServesTheRoutesViewJSONUnderTheRoutesPage(t *testing.T) {
	b := startBroker(t)
	drainURL, routesURL, monitorURL := runWithMonitor(t, b.Addrs())
	postRoutes(t, drainURL)
	waitFor(t, "the route metrics of every request", func() bool {
		status, raw := getJSON(t, routesURL+"/routes")
		// The minutes come from the windows topic, read apart from the
		// table's: both are in when every route has its minute.
		return status == http.StatusOK && strings.Count(string(raw), `"path"`) == 4 && strings.Contains(string(raw), `"503":1`) &&
			strings.Contains(string(raw), `"500":1`) && strings.Count(string(raw), `"minutes":[{`) == 4
	})
	api := monitorURL + "/api/pages/" + logdrain.RoutesPage
	for _, path := range []string{"/routes", "/routes/%2Ffoo", "/routes/%2Fhaiwen%2Fseafile"} {
		_, fromView := getJSON(t, routesURL+path)
		status, fromPage := getJSON(t, api+path)
		if status != http.StatusOK || string(fromPage) != string(fromView) {
			t.Errorf("GET %s from the monitor: %d %s\nwant the routes view's %s", path, status, fromPage, fromView)
		}
	}
	_, foo := getJSON(t, api+"/routes/%2Ffoo")
	if want := `{"path":"/foo","service":{"sum":500,"count":2,"average":250.0},"connect":{"sum":12,"count":2,"average":6.0},"statuses":{"200":2},"minutes":[`; !strings.HasPrefix(string(foo), want) {
		t.Errorf("GET /routes/%%2Ffoo from the monitor: %s\nwant it to begin %s", foo, want)
	}
	for _, c := range []struct {
		path   string
		status int
		says   string
	}{
		{"/routes/%2Fnowhere", http.StatusNotFound, `route \"/nowhere\"`},
		{"/routes/", http.StatusBadRequest, "give one path"},
		{"/routes/api/orders", http.StatusBadRequest, "escaped as one segment"},
		{"/nothing", http.StatusNotFound, "serves GET /routes"},
	} {
		for _, base := range []string{routesURL, api} {
			status, raw := getJSON(t, base+c.path)
			if status != c.status || !strings.Contains(string(raw), `"error":`) || !strings.Contains(string(raw), c.says) {
				t.Errorf("GET %s%s: %d %s, want %d with a JSON error saying %s", base, c.path, status, raw, c.status, c.says)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodPost, api+"/routes", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the routes page's API: %d, want 405", resp.StatusCode)
	}
}

// startBrowser starts headless chromium for the test, or skips the test
// where it is not installed.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, 1280, 1100, 120*time.Second)
}

// screenshot saves the page as name in SLUICE_SCREENSHOT_DIR, or in a
// directory of the test's.
func screenshot(t *testing.T, browser context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SLUICE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the page: %s", path)
}

func TestRoutesPageShowsTheBusiestAndSlowestRoutesWithAChartInABrowser(t *testing.T) {
	b := startBroker(t)
	drainURL, routesURL, monitorURL := runWithMonitor(t, b.Addrs())
	browser := startBrowser(t)
	postRoutes(t, drainURL)
	waitFor(t, "the route metrics of every request", func() bool {
		status, raw := getJSON(t, routesURL+"/routes")
		return status == http.StatusOK && strings.Count(string(raw), `"path"`) == 4 && strings.Contains(string(raw), `"503":1`) &&
			strings.Contains(string(raw), `"500":1`)
	})

	// The overview links to the page.
	if err := chromedp.Do(browser, chromedp.Navigate(monitorURL+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(browser, chromedp.Poll[bool](`document.querySelector('#pages a[href="/pages/routes/"]') !== null`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the overview does not link to the routes page: %v", err)
	}
	if err := chromedp.Do(browser, chromedp.Navigate(monitorURL+"/pages/routes/")); err != nil {
		t.Fatal(err)
	}
	// The busiest first with their requests, the slowest by average
	// service time, and the busiest's chart.
	rendered := `(() => {
		const rows = sel => Array.from(document.querySelectorAll(sel + ' tbody tr')).map(r =>
			r.dataset.path + ' ' + r.querySelector('.requests').textContent + ' ' + r.querySelector('.average').textContent);
		return JSON.stringify({
			busiest: rows('#busiest'), slowest: rows('#slowest'),
			routes: document.getElementById('routes-count').textContent,
			requests: document.getElementById('routes-requests').textContent,
			chart: document.getElementById('route-chart').dataset.path || '',
			bars: Array.from(document.querySelectorAll('#route-chart-svg rect')).filter(r => Number(r.getAttribute('height')) > 0).length,
			title: document.getElementById('route-chart-path').textContent,
		});
	})()`
	want := `{"busiest":["/api/orders 4 50","/bar 2 15,015","/foo 2 250","/haiwen/seafile 1 166"],` +
		`"slowest":["/bar 2 15,015","/foo 2 250","/haiwen/seafile 1 166","/api/orders 4 50"],` +
		`"routes":"4","requests":"9","chart":"/api/orders","bars":1,"title":"/api/orders"}`
	_, err := chromedp.Run(browser, chromedp.Poll[bool](`(`+rendered+`) === `+"`"+want+"`",
		chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		got, _ := chromedp.Run(browser, chromedp.Evaluate[string](rendered))
		t.Fatalf("the routes page shows %s\nwant %s (%v)", got, want, err)
	}
	// Choosing a route charts it.
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#slowest tr[data-path="/foo"]`))); err != nil {
		t.Fatal(err)
	}
	_, err = chromedp.Run(browser, chromedp.Poll[bool](`document.getElementById('route-chart').dataset.path === '/foo' &&
		document.querySelector('#slowest tr[data-path="/foo"]').classList.contains('selected') &&
		Array.from(document.querySelectorAll('#route-chart-svg rect')).filter(r => Number(r.getAttribute('height')) > 0).length === 1 &&
		document.querySelector('#route-chart-svg polyline') !== null &&
		/^[0-9.,]+$/.test(document.getElementById('route-p95').textContent) &&
		document.getElementById('route-chart-label').textContent.includes('requests per minute')`,
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		got, _ := chromedp.Run(browser, chromedp.Evaluate[string](rendered))
		t.Fatalf("the chart did not switch to /foo: %v; the page shows %s", err, got)
	}
	screenshot(t, browser, "routes.png")
}
