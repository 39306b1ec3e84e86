package adtrack

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is one request as the network received it.
type seen struct {
	method, path, body string
	header             http.Header
}

// network is a loopback HTTP server standing in for an ad network: it
// records every request and answers with the statuses of script in turn,
// the last one repeated.
type network struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []seen
	script []int
}

func newNetwork(t *testing.T, script ...int) *network {
	n := &network{script: script}
	n.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		i := min(len(n.seen), len(n.script)-1)
		n.seen = append(n.seen, seen{r.Method, r.URL.RequestURI(), string(b), r.Header.Clone()})
		n.mu.Unlock()
		if n.script[i] == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(n.script[i])
		if n.script[i] >= 500 {
			io.WriteString(w, "down for maintenance\n")
		}
	}))
	t.Cleanup(n.Close)
	return n
}

func (n *network) requests() []seen {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]seen(nil), n.seen...)
}

// fastSender retries without making the tests wait.
func fastSender() *Sender {
	return &Sender{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
}

func send(t *testing.T, s *Sender, req Request) Result {
	t.Helper()
	res, err := s.Send(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSendMapsResponseStatusesToOutcomes(t *testing.T) {
	for _, c := range []struct {
		code     int
		status   Status
		attempts int
	}{
		{200, StatusOK, 1},
		{204, StatusOK, 1},
		{302, StatusOK, 1},
		{400, StatusMissingParameter, 1},
		{201, StatusFailed, 1},
		{404, StatusFailed, 1},
		{500, StatusFailed, 3},
		{503, StatusFailed, 3},
		{429, StatusFailed, 3},
	} {
		n := newNetwork(t, c.code)
		res := send(t, fastSender(), Request{ID: "r1", PostbackID: "pb", URL: n.URL + "/pix?a=1"})
		if res.Status != c.status || res.Code != c.code || res.Attempts != c.attempts || len(n.requests()) != c.attempts {
			t.Errorf("status %d: %+v, %d requests; want %s after %d", c.code, res, len(n.requests()), c.status, c.attempts)
		}
		if (c.status == StatusFailed) != (res.Error != "") {
			t.Errorf("status %d: error %q", c.code, res.Error)
		}
		if res.At.IsZero() || res.Request.ID != "r1" {
			t.Errorf("status %d: result %+v", c.code, res)
		}
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	n := newNetwork(t, http.StatusFound)
	res := send(t, fastSender(), Request{URL: n.URL + "/pix"})
	if got := n.requests(); res.Status != StatusOK || len(got) != 1 || got[0].path != "/pix" {
		t.Fatalf("%+v; requests %+v", res, got)
	}
}

func TestSendRetriesThenSucceedsWithTheSameRequestID(t *testing.T) {
	n := newNetwork(t, 503, 500, 200)
	res := send(t, fastSender(), Request{ID: "0123abcd", URL: n.URL + "/pix"})
	got := n.requests()
	if res.Status != StatusOK || res.Code != 200 || res.Attempts != 3 || res.Error != "" || len(got) != 3 {
		t.Fatalf("%+v after %d requests", res, len(got))
	}
	for i, r := range got {
		if id := r.header.Get("X-Request-Id"); id != "0123abcd" {
			t.Errorf("attempt %d: X-Request-Id %q", i+1, id)
		}
	}
}

func TestSendGivesUpAfterTheLastAttemptWithTheLastError(t *testing.T) {
	n := newNetwork(t, 500)
	res := send(t, &Sender{Attempts: 5, Backoff: time.Millisecond}, Request{URL: n.URL})
	if res.Status != StatusFailed || res.Code != 500 || res.Attempts != 5 || len(n.requests()) != 5 ||
		res.Error != "status 500: down for maintenance" {
		t.Fatalf("%+v", res)
	}
}

func TestSendTransportFailureIsFailedWithTheError(t *testing.T) {
	n := newNetwork(t, 200)
	n.Close()
	res := send(t, fastSender(), Request{URL: n.URL + "/pix"})
	if res.Status != StatusFailed || res.Code != 0 || res.Attempts != 3 || !strings.Contains(res.Error, "connection refused") {
		t.Fatalf("%+v", res)
	}
}

// hanging is a network that takes requests and never answers until the
// test ends; arrived receives a value for each request.
func hanging(t *testing.T, writeHeader bool) (*httptest.Server, chan struct{}) {
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		if writeHeader {
			w.WriteHeader(http.StatusInternalServerError)
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, arrived
}

func TestSendTimesOutOnANetworkThatDoesNotAnswer(t *testing.T) {
	srv, _ := hanging(t, false)
	s := &Sender{ReadTimeout: 50 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond}
	res := send(t, s, Request{URL: srv.URL})
	if res.Status != StatusFailed || res.Attempts != 2 || !strings.Contains(res.Error, "timeout awaiting response headers") {
		t.Fatalf("%+v", res)
	}
}

func TestSendTimesOutOnAResponseBodyThatDoesNotEnd(t *testing.T) {
	srv, _ := hanging(t, true)
	s := &Sender{ReadTimeout: 50 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond}
	res := send(t, s, Request{URL: srv.URL})
	if res.Status != StatusFailed || res.Code != 500 || res.Attempts != 2 {
		t.Fatalf("%+v", res)
	}
}

func TestSendStopsWhenTheContextEndsDuringARequest(t *testing.T) {
	srv, arrived := hanging(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := (&Sender{}).Send(ctx, Request{PostbackID: "pb", URL: srv.URL})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `send postback "pb"`) {
		t.Fatalf("error %v", err)
	}
}

func TestSendStopsWhenTheContextEndsBetweenAttempts(t *testing.T) {
	n := newNetwork(t, 500)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The network is asked once, then the sender waits an hour to retry:
	// only the cancellation can end the wait.
	done := make(chan error, 1)
	go func() {
		_, err := (&Sender{Backoff: time.Hour, MaxBackoff: time.Hour}).Send(ctx, Request{URL: n.URL})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if got := len(n.requests()); got != 1 {
		t.Fatalf("%d requests", got)
	}
}

func TestSendPostsTheBodyWithTheConfiguredHeaders(t *testing.T) {
	n := newNetwork(t, 204)
	req := Request{
		ID: "abc", URL: n.URL + "/pay?adid=1", Method: "POST", Body: `{"price":"0.99"}`,
		Header: map[string]string{"Content-Type": "application/json", "X-Partner": "fubar"},
	}
	res := send(t, fastSender(), req)
	got := n.requests()
	if res.Status != StatusOK || len(got) != 1 {
		t.Fatalf("%+v, %d requests", res, len(got))
	}
	r := got[0]
	if r.method != "POST" || r.path != "/pay?adid=1" || r.body != `{"price":"0.99"}` ||
		r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Partner") != "fubar" || r.header.Get("X-Request-Id") != "abc" {
		t.Fatalf("request %+v", r)
	}
}

func TestSendWithoutMethodPostsABodyAndGetsOtherwise(t *testing.T) {
	n := newNetwork(t, 200)
	send(t, fastSender(), Request{URL: n.URL + "/a", Body: "x=1"})
	send(t, fastSender(), Request{URL: n.URL + "/b"})
	got := n.requests()
	if len(got) != 2 || got[0].method != "POST" || got[0].body != "x=1" || got[1].method != "GET" || got[1].body != "" {
		t.Fatalf("requests %+v", got)
	}
}

func TestSendOfARenderedPostback(t *testing.T) {
	n := newNetwork(t, 200)
	ps := parsePostbacks(t, `
postbacks:
  - id: applift-ist
    network: applift
    event: ist
    platform: ios
    url: "`+n.URL+`/pix?idfa={{.Params.adid}}&ip={{.Event.IP}}&event={{.Event.Type}}"
`)
	req, err := ps.Get("applift-ist").Render(Source{Event: mustParse(t, exampleInstall)})
	if err != nil {
		t.Fatal(err)
	}
	res := send(t, fastSender(), req)
	got := n.requests()
	if res.Status != StatusOK || len(got) != 1 || got[0].path != "/pix?idfa=ECC27E57-1605-2714-CCCC-13DC6DFB742E&ip=188.103.123.173&event=ist" ||
		got[0].header.Get("X-Request-Id") != req.ID {
		t.Fatalf("%+v; requests %+v", res, got)
	}
}

func TestResultRoundTripsAsAPobEvent(t *testing.T) {
	res := Result{
		Request: Request{
			ID: "abc", PostbackID: "7games-pay", Network: "7games", Method: "POST",
			URL: "https://n.example/pay?a=1&b=2", Body: `{"x": "y z"}`,
			Header: map[string]string{"Content-Type": "application/json"},
		},
		Status: StatusFailed, Code: 503, Error: "status 503: down for maintenance", Attempts: 4,
		At: time.Unix(1465602000, 0).UTC(),
	}
	b, err := EventCodec().Encode(res.Event())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := EventCodec().Decode(b)
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	if ev.Type() != "pob" || ev.Param("pbid") != "7games-pay" || ev.Param("rc") != "503" || ev.Param("status") != "failed" {
		t.Fatalf("pob event %s", b)
	}
	back, err := ParseResult(ev)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, res) {
		t.Fatalf("%+v\nread back as\n%+v", res, back)
	}
}

func TestErrorResultOfAPostbackThatDidNotRender(t *testing.T) {
	p := loadSample(t).Get("applift-ist")
	_, err := p.Render(Source{Event: mustParse(t, "/t/ist ts=1 ")})
	res := ErrorResult(p, err, time.Unix(5, 0))
	ev := res.Event()
	if res.Status != StatusError || ev.Param("pbid") != "applift-ist" || ev.Param("rc") != "0" || !strings.Contains(ev.Param("error"), "url") {
		t.Fatalf("%+v as %s", res, ev)
	}
	if _, err := ParseResult(mustParse(t, "/t/ist ts=1 pbid=x")); err == nil {
		t.Fatal("an ist event read as a result")
	}
}
