package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/web"
)

type row struct{ N int }

// startView fills the table topic "things" with rows thing-00 … thing-24
// and returns a running view of it.
func startView(t *testing.T, reg prometheus.Registerer) *sluice.View[row] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	opts := []sluice.Opt{sluice.Brokers(b.Addrs()...), sluice.TopicDefaults(3, 1), sluice.Metrics(reg)}
	em, err := sluice.NewEmitter("things", codec.JSON[row](), opts[0], opts[1], opts[2])
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if err := em.Emit(ctx, fmt.Sprintf("thing-%02d", i), row{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := sluice.NewView("things", codec.JSON[row](), opts[0], opts[1], opts[2])
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return v
}

type answer struct {
	status int
	ctype  string
	body   []byte
}

func (a answer) errorMessage() string {
	var e struct{ Error string }
	_ = json.Unmarshal(a.body, &e)
	return e.Error
}

func do(t *testing.T, h http.Handler, method, target string, header ...string) answer {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return answer{rec.Code, rec.Header().Get("Content-Type"), body}
}

func TestMonitorAnswersBadRequestsWithJSONErrors(t *testing.T) {
	v := startView(t, prometheus.NewRegistry())
	idle, err := sluice.NewView("idle", codec.JSON[row]())
	if err != nil {
		t.Fatal(err)
	}
	m := web.New(web.Views(v, idle))
	for _, c := range []struct {
		method, target string
		status         int
		says           string
	}{
		{"GET", "/api/views/nothing/keys/thing-01", http.StatusNotFound, `no view "nothing"`},
		{"GET", "/api/views/nothing/rows", http.StatusNotFound, `no view "nothing"`},
		{"GET", "/api/views/things/keys/nobody", http.StatusNotFound, `key "nobody" not found`},
		{"GET", "/api/views/things/keys/", http.StatusBadRequest, "give a key"},
		{"GET", "/api/views/things/rows?limit=0", http.StatusBadRequest, "limit"},
		{"GET", "/api/views/things/rows?limit=many", http.StatusBadRequest, "limit"},
		{"GET", "/api/views/things/rows?limit=1001", http.StatusBadRequest, "limit"},
		{"GET", "/api/views/things/rows?from=z&to=a", http.StatusBadRequest, "bad range"},
		{"POST", "/api/state", http.StatusMethodNotAllowed, "not allowed"},
		{"DELETE", "/api/views/things/keys/thing-01", http.StatusMethodNotAllowed, "not allowed"},
		{"GET", "/api/nothing", http.StatusNotFound, "no such page"},
		{"GET", "/static/", http.StatusNotFound, "no such file"},
		{"GET", "/api/views/idle/keys/x", http.StatusServiceUnavailable, "not running"},
		{"GET", "/api/views/idle/rows", http.StatusServiceUnavailable, "not running"},
		{"GET", "/metrics", http.StatusNotFound, "no such page"},
	} {
		a := do(t, m, c.method, c.target)
		if a.status != c.status || a.ctype != "application/json" || !strings.Contains(a.errorMessage(), c.says) {
			t.Errorf("%s %s: %d %s %s, want %d with a JSON error saying %q", c.method, c.target, a.status, a.ctype, a.body, c.status, c.says)
		}
	}
}

func TestMonitorServesRowsStateAndPage(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := startView(t, reg)
	m := web.New(web.Views(v), web.Metrics(reg))

	a := do(t, m, "GET", "/api/views/things/keys/thing-07")
	if a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"key":"thing-07","value":{"N":7}}` {
		t.Errorf("key: %d %s", a.status, a.body)
	}
	a = do(t, m, "GET", "/api/views/things/rows?from=thing-05&to=thing-20&limit=3")
	var rows struct {
		Rows []struct {
			Key   string
			Value row
		}
		More bool
	}
	if err := json.Unmarshal(a.body, &rows); err != nil || a.status != http.StatusOK {
		t.Fatalf("rows: %d %s %v", a.status, a.body, err)
	}
	if len(rows.Rows) != 3 || rows.Rows[0].Key != "thing-05" || rows.Rows[2].Value.N != 7 || !rows.More {
		t.Errorf("rows from thing-05, limit 3: %s", a.body)
	}
	a = do(t, m, "GET", "/api/views/things/rows?from=thing-23")
	if err := json.Unmarshal(a.body, &rows); err != nil || len(rows.Rows) != 2 || rows.More {
		t.Errorf("rows from thing-23: %s", a.body)
	}

	a = do(t, m, "GET", "/api/state")
	var st struct {
		Views []struct {
			Name, State string
			Rows        int
		}
	}
	if err := json.Unmarshal(a.body, &st); err != nil || len(st.Views) != 1 || st.Views[0].Name != "things" || st.Views[0].State != "running" || st.Views[0].Rows != 25 {
		t.Errorf("state: %d %s", a.status, a.body)
	}
	if a = do(t, m, "GET", "/"); a.status != http.StatusOK || !strings.Contains(string(a.body), "Table browser") {
		t.Errorf("page: %d %.200s", a.status, a.body)
	}
	if a = do(t, m, "GET", "/static/app.js"); a.status != http.StatusOK {
		t.Errorf("script: %d", a.status)
	}
	a = do(t, m, "GET", "/metrics")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `sluice_view_rows{view="things"} 25`) ||
		!strings.Contains(string(a.body), `sluice_emitter_records_total{topic="things"} 25`) {
		t.Errorf("metrics: %d\n%s", a.status, a.body)
	}
}

func TestMonitorWithATokenRefusesRequestsWithoutIt(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := web.New(web.Token("s3cret"), web.Metrics(reg))
	for _, target := range []string{"/", "/api/state", "/metrics", "/static/app.js", "/api/views/x/keys/y"} {
		for _, header := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret"}, {"Cookie", "sluice_monitor_token=wrong"}} {
			a := do(t, m, "GET", target, header...)
			if a.status != http.StatusUnauthorized || a.ctype != "application/json" || a.errorMessage() == "" {
				t.Errorf("GET %s with %v: %d %s, want 401 with a JSON error", target, header, a.status, a.body)
			}
		}
		if a := do(t, m, "GET", target+"?token=wrong"); a.status != http.StatusUnauthorized {
			t.Errorf("GET %s?token=wrong: %d, want 401", target, a.status)
		}
	}
	if a := do(t, m, "GET", "/api/state", "Authorization", "Bearer s3cret"); a.status != http.StatusOK {
		t.Errorf("state with the token: %d %s", a.status, a.body)
	}
	if a := do(t, m, "GET", "/metrics", "Authorization", "Bearer s3cret"); a.status != http.StatusOK {
		t.Errorf("metrics with the token: %d %s", a.status, a.body)
	}
	// The page takes the token once from its address and keeps it in a
	// cookie for its own requests.
	req := httptest.NewRequest("GET", "/?token=s3cret", nil)
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusOK || len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("page with ?token: %d, cookies %v", rec.Code, cookies)
	}
	if a := do(t, m, "GET", "/api/state", "Cookie", cookies[0].String()); a.status != http.StatusOK {
		t.Errorf("state with the cookie: %d %s", a.status, a.body)
	}
	if a := do(t, m, "GET", "/api/state?token=s3cret"); a.status != http.StatusUnauthorized {
		t.Errorf("state with ?token: %d, want 401: only the page takes the token from its address", a.status)
	}
}

func TestMonitorListensOnlyOnLoopbackWithoutAToken(t *testing.T) {
	for _, c := range []struct {
		addr string
		opts []web.Opt
		ok   bool
	}{
		{"127.0.0.1:0", nil, true},
		{"localhost:0", nil, true},
		{"[::1]:0", nil, true},
		{":0", nil, false},
		{"0.0.0.0:0", nil, false},
		{"0.0.0.0:0", []web.Opt{web.Token("t")}, true},
		{"0.0.0.0:0", []web.Opt{web.AllowRemote()}, true},
		{"no-port", nil, false},
	} {
		ln, err := web.New(c.opts...).Listen(c.addr)
		if ln != nil {
			ln.Close()
		}
		if c.ok && err != nil && !strings.Contains(err.Error(), "cannot assign") {
			t.Errorf("listen %s: %v", c.addr, err)
		}
		if !c.ok && err == nil {
			t.Errorf("listen %s without a token: no error", c.addr)
		}
	}
}

// A view's row whose value is NaN or infinite, which JSON has no number
// for, is shown as the string "NaN", "+Inf" or "-Inf", and a page's API
// answers such values alike, instead of a 500.
func TestMonitorServesNonFiniteValuesAsStrings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	opts := []sluice.Opt{sluice.Brokers(b.Addrs()...), sluice.TopicDefaults(1, 1)}
	c := sluice.Sum[string, float64](func(string) float64 { return 0 }).Codec
	em, err := sluice.NewEmitter("temperatures", c, opts[0], opts[1])
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{"a-nan": math.NaN(), "b-hot": math.Inf(1), "c-mild": 21.5} {
		if err := em.Emit(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	_ = em.Close()
	v, err := sluice.NewView("temperatures", c, opts[0], opts[1])
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]float64{"mean": math.NaN()})
	})
	m := web.New(web.Views(v), web.Pages(web.Page{Name: "temps", Assets: fstest.MapFS{web.PageBody: {Data: []byte("<p>")}}, API: api}))

	if a := do(t, m, "GET", "/api/views/temperatures/keys/b-hot"); a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"key":"b-hot","value":"+Inf"}` {
		t.Errorf("key b-hot: %d %s", a.status, a.body)
	}
	want := `{"rows":[{"key":"a-nan","value":"NaN"},{"key":"b-hot","value":"+Inf"},{"key":"c-mild","value":21.5}],"more":false}`
	if a := do(t, m, "GET", "/api/views/temperatures/rows"); a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != want {
		t.Errorf("rows: %d %s, want %s", a.status, a.body, want)
	}
	if a := do(t, m, "GET", "/api/pages/temps/"); a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"mean":"NaN"}` {
		t.Errorf("page API: %d %s", a.status, a.body)
	}
}

// A key that looks like a path is served its own row, given as it is or
// escaped, not redirected to another key's.
func TestMonitorServesAKeyThatLooksLikeAPathAsItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	opts := []sluice.Opt{sluice.Brokers(b.Addrs()...), sluice.TopicDefaults(2, 1)}
	em, err := sluice.NewEmitter("routes", codec.String(), opts[0], opts[1])
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"/api/users", "api/users", "a//b", "a/../b", "b"}
	for _, k := range keys {
		if err := em.Emit(ctx, k, "row of "+k); err != nil {
			t.Fatal(err)
		}
	}
	_ = em.Close()
	v, err := sluice.NewView("routes", codec.String(), opts[0], opts[1])
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m := web.New(web.Views(v))
	for _, k := range keys {
		want, _ := json.Marshal(map[string]string{"key": k, "value": "row of " + k})
		for _, path := range []string{"/api/views/routes/keys/" + k, "/api/views/routes/keys/" + url.PathEscape(k)} {
			if a := do(t, m, "GET", path); a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != string(want) {
				t.Errorf("GET %s: %d %s, want %s", path, a.status, a.body, want)
			}
		}
	}
}
