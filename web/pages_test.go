package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluice-io/sluice/web"
)

// serve serves m on loopback until the test ends and returns its base URL.
func serve(t *testing.T, m *web.Monitor) string {
	t.Helper()
	ln, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, method, url string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), body}
}

func tidesPage() web.Page {
	api := http.NewServeMux()
	api.HandleFunc("GET /tides", func(w http.ResponseWriter, _ *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]int{"high": 3})
	})
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, http.StatusNotFound, "no tides at "+r.URL.Path)
	})
	return web.Page{
		Name:  "tides",
		Title: "Tides",
		Assets: fstest.MapFS{
			web.PageBody: {Data: []byte(`<p id="tides-body">high water</p><script src="static/tides.js" defer></script>`)},
			"tides.js":   {Data: []byte(`sluice.every(async () => {});`)},
		},
		API: api,
	}
}

func TestMonitorServesAnAddedPageInItsFrameWithItsAssetsAndAPI(t *testing.T) {
	base := serve(t, web.New(web.Pages(tidesPage(), web.Page{Name: "quiet", Assets: fstest.MapFS{web.PageBody: {Data: []byte("calm")}}})))

	a := get(t, "GET", base+"/pages/tides/")
	page := string(a.body)
	if a.status != http.StatusOK || !strings.HasPrefix(a.ctype, "text/html") {
		t.Fatalf("page: %d %s %s", a.status, a.ctype, a.body)
	}
	for _, want := range []string{
		`<p id="tides-body">high water</p>`, `src="static/tides.js"`, `src="/static/monitor.js"`,
		`data-api="/api/pages/tides"`, `<a href="/pages/tides/" class="current">Tides</a>`, `<a href="/pages/quiet/">quiet</a>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s:\n%s", want, page)
		}
	}
	if a := get(t, "GET", base+"/pages/tides"); a.status != http.StatusOK || !strings.Contains(string(a.body), "tides-body") {
		t.Errorf("page without its slash: %d, want the page after a redirect", a.status)
	}
	if a := get(t, "GET", base+"/pages/tides/static/tides.js"); a.status != http.StatusOK || !strings.Contains(string(a.body), "sluice.every") {
		t.Errorf("page script: %d %s", a.status, a.body)
	}
	if a := get(t, "GET", base+"/static/monitor.js"); a.status != http.StatusOK || !strings.Contains(string(a.body), "window.sluice") {
		t.Errorf("monitor script: %d", a.status)
	}
	if a := get(t, "GET", base+"/api/pages/tides/tides"); a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"high":3}` {
		t.Errorf("page API: %d %s", a.status, a.body)
	}
	var st struct {
		Pages []struct{ Name, Title, Path string }
	}
	a = get(t, "GET", base+"/api/state")
	if err := json.Unmarshal(a.body, &st); err != nil || len(st.Pages) != 2 || st.Pages[0].Path != "/pages/tides/" || st.Pages[1].Title != "quiet" {
		t.Errorf("state lists the pages as %s", a.body)
	}
	for _, c := range []struct {
		method, path string
		status       int
		says         string
	}{
		{"GET", "/api/pages/tides/ebb", http.StatusNotFound, "no tides at /ebb"},
		{"POST", "/api/pages/tides/tides", http.StatusMethodNotAllowed, "only reads"},
		{"GET", "/api/pages/quiet/x", http.StatusNotFound, "has no API"},
		{"GET", "/pages/tides/static/", http.StatusNotFound, "no such file"},
		{"GET", "/pages/tides/static/none.js", http.StatusNotFound, ""},
		{"GET", "/pages/nowhere/", http.StatusNotFound, "no such page"},
	} {
		a := get(t, c.method, base+c.path)
		if a.status != c.status || (c.says != "" && (a.ctype != "application/json" || !strings.Contains(a.errorMessage(), c.says))) {
			t.Errorf("%s %s: %d %s, want %d saying %q", c.method, c.path, a.status, a.body, c.status, c.says)
		}
	}
}

func TestMonitorWithATokenTakesItOnAnAddedPage(t *testing.T) {
	m := web.New(web.Token("s3cret"), web.Pages(tidesPage()))
	if a := do(t, m, "GET", "/pages/tides/"); a.status != http.StatusUnauthorized {
		t.Errorf("page without the token: %d", a.status)
	}
	if a := do(t, m, "GET", "/api/pages/tides/tides?token=s3cret"); a.status != http.StatusUnauthorized {
		t.Errorf("page API with ?token: %d, want 401: only pages take the token from their address", a.status)
	}
	if a := do(t, m, "GET", "/pages/tides/?token=s3cret"); a.status != http.StatusOK {
		t.Errorf("page with ?token: %d", a.status)
	}
	if a := do(t, m, "GET", "/api/pages/tides/tides", "Authorization", "Bearer s3cret"); a.status != http.StatusOK {
		t.Errorf("page API with the token: %d %s", a.status, a.body)
	}
}

func TestMonitorRefusesToListenWithAPageItCannotServe(t *testing.T) {
	body := fstest.MapFS{web.PageBody: {Data: []byte("x")}}
	for _, c := range []struct {
		pages []web.Page
		says  string
	}{
		{[]web.Page{{Name: "Bad Name", Assets: body}}, "want a name"},
		{[]web.Page{{Name: "", Assets: body}}, "want a name"},
		{[]web.Page{{Name: "a", Assets: body}, {Name: "a", Assets: body}, {Name: "a", Assets: body}}, "another page"},
		{[]web.Page{{Name: "a"}, {Name: "a", Assets: body}}, "another page"},
		{[]web.Page{{Name: "a"}}, "no assets"},
		{[]web.Page{{Name: "a", Assets: fstest.MapFS{"a.js": {}}}}, "body.html"},
	} {
		m := web.New(web.Pages(c.pages...))
		ln, err := m.Listen("127.0.0.1:0")
		if ln != nil {
			ln.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("pages %+v: listen error %v, want one saying %q", c.pages, err, c.says)
		}
	}
	m := web.New(web.Pages(web.Page{Name: "a"}))
	if a := do(t, m, "GET", "/pages/a/"); a.status != http.StatusInternalServerError || !strings.Contains(a.errorMessage(), "no assets") {
		t.Errorf("a page without assets: %d %s", a.status, a.body)
	}
	m = web.New(web.Pages(web.Page{Name: "a"}, web.Page{Name: "b", Assets: body}))
	if a := do(t, m, "GET", "/pages/b/"); a.status != http.StatusOK || strings.Contains(string(a.body), `href="/pages/a/"`) {
		t.Errorf("a page beside one that cannot be served: %d %s, want it served without a link to the other", a.status, a.body)
	}
}

// A page's address without its slash, with the token, redirects to the
// page with the token kept, as the address with the slash is served.
func TestMonitorWithATokenTakesItOnAPageAddressWithoutItsSlash(t *testing.T) {
	base := serve(t, web.New(web.Token("s3cret"), web.Pages(tidesPage())))
	if a := get(t, "GET", base+"/pages/tides?token=s3cret"); a.status != http.StatusOK || !strings.Contains(string(a.body), "tides-body") {
		t.Errorf("page without its slash, with ?token: %d %s, want the page after a redirect", a.status, a.body)
	}
	if a := get(t, "GET", base+"/pages/tides?token=wrong"); a.status != http.StatusUnauthorized {
		t.Errorf("page without its slash, with a wrong token: %d, want 401", a.status)
	}
}
