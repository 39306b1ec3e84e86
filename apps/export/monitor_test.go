package export

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluice-io/sluice/internal/browsertest"
)

// gatedSink is an HTTP sink server that fails every call with 503 while
// it is closed; once open, it rejects the first line it gets and takes the
// rest.
type gatedSink struct {
	mu       sync.Mutex
	open     bool
	rejected bool
	taken    map[string]bool
}

func (g *gatedSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		http.Error(w, "the sink is down", http.StatusServiceUnavailable)
		return
	}
	var ans HTTPAnswer
	for i, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if !g.rejected {
			g.rejected = true
			ans.Rejected = append(ans.Rejected, RejectedLine{Line: i, Error: "throttled"})
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(line), &ev); err == nil {
			g.taken[ev.ID] = true
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

func (g *gatedSink) setOpen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
}

// runMonitored runs the export of u to a gated sink with its monitor and
// returns the sink and the monitor's base URL.
func runMonitored(t *testing.T, u updates) (*gatedSink, string) {
	t.Helper()
	b := startTestBroker(t)
	produceBuckets(t, newInputClient(t, b), u)
	g := &gatedSink{taken: map[string]bool{}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	sink, err := NewHTTPSink(srv.URL+"/events", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2eConfig(b, sink, t.TempDir())
	cfg.MonitorAddr = "127.0.0.1:0"
	addr := make(chan net.Addr, 1)
	cfg.MonitorReady = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		return g, "http://" + a.String()
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the monitor did not start within 30s")
	}
	return nil, ""
}

// exportedUpdates counts the updates of u the group takes into buckets.
func exportedUpdates(u updates) int64 {
	n := int64(0)
	for _, recs := range u.buckets {
		for _, r := range recs {
			if k, err := ParseStatsKey(string(r.Key)); err == nil && k.Exported() {
				n++
			}
		}
	}
	return n
}

func getStatus(t *testing.T, url string) (int, string, status) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var s status
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatalf("GET %s: %s: %v", url, body, err)
		}
	}
	return resp.StatusCode, string(body), s
}

func TestExportPageAPIServesPendingEventsAndSinkHealth(t *testing.T) {
	u := genUpdates(rand.New(rand.NewPCG(61, 62)), time.Now().Add(-time.Hour).Truncate(time.Second), time.Second, 3)
	g, base := runMonitored(t, u)
	api := base + "/api/pages/" + ExportPage
	events := int64(len(u.latest))

	// While the sink is down, every event is pending and the calls fail.
	var s status
	waitFor(t, 60*time.Second, "every event pending while the sink is down", func() bool {
		_, _, s = getStatus(t, api+"/status")
		return s.Group != nil && s.Group.EventsOut == events && s.Sink != nil && s.Sink.Pending == len(u.latest) && s.Sink.Errors["call"] > 0
	})
	if h := s.Sink; h.PendingLimit != DefaultPendingLimit || h.Paused || h.EventsSent != 0 || h.LastSuccess != nil ||
		h.LastError == nil || h.LastError.Kind != "call" || !strings.Contains(h.LastError.Message, "503") {
		t.Errorf("sink health while the sink is down: %+v, last error %+v", h, h.LastError)
	}
	if in := exportedUpdates(u); s.Group.UpdatesIn != in || s.Group.Deduped != in-events {
		t.Errorf("group flow %+v, want %d updates in and %d deduped", s.Group, in, in-events)
	}

	g.setOpen()
	waitFor(t, 60*time.Second, "every event accepted once the sink is up", func() bool {
		_, _, s = getStatus(t, api+"/status")
		return s.Sink.Pending == 0 && s.Sink.EventsSent == events
	})
	if h := s.Sink; h.LastSuccess == nil || h.Errors["record"] != 1 || h.Calls < h.Errors["call"]+2 || h.Records < h.Calls {
		t.Errorf("sink health once the sink is up: %+v", h)
	}

	for _, c := range []struct {
		method, path string
		status       int
		says         string
	}{
		{"GET", "/nothing", http.StatusNotFound, "serves GET /status"},
		{"GET", "/status/more", http.StatusNotFound, "serves GET /status"},
		{"POST", "/status", http.StatusMethodNotAllowed, "only reads"},
	} {
		req, _ := http.NewRequest(c.method, api+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, c.says) {
			t.Errorf("%s %s: %d %s, want %d with a JSON error saying %q", c.method, c.path, resp.StatusCode, body, c.status, c.says)
		}
	}
}

// commas writes n as the page does, with thousands separated by commas.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func TestExportPageShowsPendingEventsAndSinkHealthInABrowser(t *testing.T) {
	browser := browsertest.Start(t, 1280, 1000, 120*time.Second)
	u := genUpdates(rand.New(rand.NewPCG(71, 72)), time.Now().Add(-time.Hour).Truncate(time.Second), time.Second, 3)
	g, base := runMonitored(t, u)
	events := commas(int64(len(u.latest)))

	if err := chromedp.Do(browser, chromedp.Navigate(base+"/pages/"+ExportPage+"/")); err != nil {
		t.Fatal(err)
	}
	shown := `JSON.stringify(Object.fromEntries(["pending", "limit", "state", "in", "deduped", "out", "sent", "errors-call",
		"errors-record", "last-success", "last-error"].map(id => [id, document.getElementById("export-" + id).textContent])))`
	poll := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(browser, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			got, _ := chromedp.Run(browser, chromedp.Evaluate[string](shown))
			t.Fatalf("%s: %v; the page shows %s", what, err, got)
		}
	}
	// While the sink is down: every event pending, failed calls, the last
	// error, no success; the chart has drawn the pending count.
	in := exportedUpdates(u)
	poll("every event pending while the sink is down", `(() => {
		const s = JSON.parse(`+shown+`);
		return s.pending === "`+events+`" && s.limit === "600,000" && s.state === "flowing" &&
			s.out === "`+events+`" && s.in === "`+commas(in)+`" && s.deduped === "`+commas(in-int64(len(u.latest)))+`" &&
			s.sent === "0" && s["errors-call"] !== "0" && s["last-success"] === "none yet" &&
			s["last-error"].includes("call: ") && s["last-error"].includes("503") &&
			document.querySelector("#export-chart polyline") !== null;
	})()`)
	g.setOpen()
	poll("every event accepted once the sink is up", `(() => {
		const s = JSON.parse(`+shown+`);
		return s.pending === "0" && s.sent === "`+events+`" && s["errors-record"] === "1" &&
			s["last-success"] !== "none yet" && s["last-error"].includes("record: ") && s["last-error"].includes("throttled");
	})()`)

	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SLUICE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "export.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the page: %s", path)
}

func TestExportNamesTheMonitorOnceInTheErrorOfAnAddressItCannotListenOn(t *testing.T) {
	b := startTestBroker(t)
	sink, err := NewHTTPSink("http://127.0.0.1:1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2eConfig(b, sink, t.TempDir())
	cfg.MonitorAddr = "127.0.0.1:-1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "export: monitor: ") || strings.Count(err.Error(), "monitor:") != 1 {
		t.Fatalf("run with monitor address %q: %v, want one error that names the monitor once", cfg.MonitorAddr, err)
	}
}
