package logdrain_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
)

func TestDrainAnswers204OnlyOnceKafkaHoldsEveryLineOfTheBody(t *testing.T) {
	b := startBroker(t)
	brokers := b.Addrs()
	url, _ := startDrain(t, brokers, logdrain.DrainConfig{DrainToken: "d.token"})

	a := post(t, url, request{
		body:    body(specRouterMsg, specAppMsg),
		headers: map[string]string{"Logplex-Msg-Count": "2", "Logplex-Drain-Token": "d.token"},
	})
	if a.status != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", a.status, a.body)
	}
	// The records are in Kafka when the 204 arrives: no waiting.
	if n := endOffsets(t, brokers, logdrain.RouterTopic); n != 1 {
		t.Fatalf("%s holds %d records right after the 204, want 1", logdrain.RouterTopic, n)
	}
	if n := endOffsets(t, brokers, logdrain.LogsTopic); n != 1 {
		t.Fatalf("%s holds %d records right after the 204, want 1", logdrain.LogsTopic, n)
	}

	r := consume(t, brokers, logdrain.RouterTopic, 1)[0]
	if string(r.Key) != "/haiwen/seafile" {
		t.Errorf("router record key %q, want the path", r.Key)
	}
	var rec logdrain.Record
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		t.Fatalf("router record %s: %v", r.Value, err)
	}
	rt := rec.Router
	if rec.Priority != 158 || rec.Facility != 19 || rec.Severity != 6 || rec.Version != 1 ||
		rec.Timestamp != "2016-05-04T04:57:12.222253Z" || rec.Hostname != "host" || rec.App != "heroku" ||
		rec.ProcID != "router" || rt == nil || rt.Path != "/haiwen/seafile" || rt.Method != "GET" ||
		rt.Status != 200 || rt.Bytes != 36360 || rt.ConnectMS == nil || *rt.ConnectMS != 0 ||
		rt.ServiceMS == nil || *rt.ServiceMS != 166 || len(rt.Fwd) != 1 || rt.Fwd[0] != "144.76.27.118" ||
		rt.RequestID != "cf59a503-3159-4d7c-8287-3ba52d7c44df" || len(rt.Fields) != 11 {
		t.Errorf("router record %s", r.Value)
	}
	l := consume(t, brokers, logdrain.LogsTopic, 1)[0]
	var logRec logdrain.Record
	if err := json.Unmarshal(l.Value, &logRec); err != nil {
		t.Fatalf("log record %s: %v", l.Value, err)
	}
	if logRec.Router != nil || logRec.Msg != "State changed from starting to up" || logRec.ProcID != "web.3" ||
		logRec.Timestamp != "2012-11-30T06:45:29.000000Z" || string(l.Key) != "host" {
		t.Errorf("log record %s key %q", l.Value, l.Key)
	}
}

func TestDrainAnswersEachRefusedRequestWithItsStatusAndWritesNothing(t *testing.T) {
	b := startBroker(t)
	brokers := b.Addrs()
	url, d := startDrain(t, brokers, logdrain.DrainConfig{
		BasicAuth: "user:secret", DrainToken: "d.token", MaxBodyBytes: 4096,
	})
	auth := map[string]string{"Logplex-Drain-Token": "d.token"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{"Logplex-Drain-Token": "d.token"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	good := body(specRouterMsg)
	cases := []struct {
		name string
		req  request
		want int
	}{
		{"no credentials", request{body: good}, http.StatusUnauthorized},
		{"token without basic auth", request{body: good, headers: auth}, http.StatusUnauthorized},
		{"basic auth without token", request{body: good, user: "user", pass: "secret"}, http.StatusUnauthorized},
		{"wrong password", request{body: good, headers: auth, user: "user", pass: "guess"}, http.StatusUnauthorized},
		{"wrong token", request{body: good, headers: map[string]string{"Logplex-Drain-Token": "d.other"}, user: "user", pass: "secret"}, http.StatusUnauthorized},
		{"body over the limit", request{body: body(strings.Repeat(specRouterMsg+" ", 20)), headers: auth, user: "user", pass: "secret"}, http.StatusRequestEntityTooLarge},
		{"msg count too high", request{body: good, headers: with(msgCount(2)), user: "user", pass: "secret"}, http.StatusBadRequest},
		{"msg count not a number", request{body: good, headers: with(map[string]string{"Logplex-Msg-Count": "two"}), user: "user", pass: "secret"}, http.StatusBadRequest},
		{"framing broken from the start", request{body: []byte("x52 <158>1 garbage\n"), headers: auth, user: "user", pass: "secret"}, http.StatusBadRequest},
		{"count past the end", request{body: []byte("999 " + specRouterMsg + "\n"), headers: auth, user: "user", pass: "secret"}, http.StatusBadRequest},
		{"empty body", request{body: nil, headers: auth, user: "user", pass: "secret"}, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := post(t, url, c.req)
			if a.status != c.want {
				t.Fatalf("status %d %q, want %d", a.status, a.body, c.want)
			}
			if c.want == http.StatusUnauthorized && a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	// A body over the limit sent without a Content-Length is refused too,
	// once the drain has read past the limit.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(body(strings.Repeat(specRouterMsg+" ", 20)))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, url+"/process", pr)
	req.SetBasicAuth("user", "secret")
	req.Header.Set("Logplex-Drain-Token", "d.token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: status %d, want 413", resp.StatusCode)
	}

	// Every refusal is answered before anything is written.
	for _, topic := range []string{logdrain.RouterTopic, logdrain.LogsTopic, logdrain.RejectsTopic} {
		if n := endOffsets(t, brokers, topic); n != 0 {
			t.Errorf("%s holds %d records after refused requests only", topic, n)
		}
	}
	// And with both credentials, on either path, the same body goes through.
	for _, path := range []string{"/logs", "/process"} {
		if a := post(t, url, request{path: path, body: good, headers: with(msgCount(1)), user: "user", pass: "secret"}); a.status != http.StatusNoContent {
			t.Fatalf("%s with credentials: status %d %q, want 204", path, a.status, a.body)
		}
	}
	s := d.Stats()
	if s.Requests[http.StatusUnauthorized] != 5 || s.Requests[http.StatusRequestEntityTooLarge] != 2 ||
		s.Requests[http.StatusBadRequest] != 5 || s.Requests[http.StatusNoContent] != 2 || s.RouterLines != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestDrainRejectsABadFrameAloneWithItsReasonAndPassesTheGoodOnes(t *testing.T) {
	b := startBroker(t)
	brokers := b.Addrs()
	url, d := startDrain(t, brokers, logdrain.DrainConfig{})

	var in []byte
	in = append(in, body(routerMsg("/a", 1, 10, 200, "good-1"))...)
	in = append(in, body(`<999>1 2016-05-04T04:57:12+00:00 host app web.1 - pri out of range`)...)
	in = append(in, body(`<158>1 2016-05-04T04:57:12+00:00 host heroku router - at=info path="/b" status=abc`)...)
	in = append(in, "\n12x <158>1 not a count\n"...) // a bad span between frames
	in = append(in, body(routerMsg("/c", 2, 20, 404, "good-2"), specAppMsg)...)
	a := post(t, url, request{body: in, headers: msgCount(6)})
	if a.status != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", a.status, a.body)
	}

	rejects := consume(t, brokers, logdrain.RejectsTopic, 3)
	kinds := map[string]string{}
	for _, r := range rejects {
		kind, reason := header(r, logdrain.RejectKindHeader), header(r, logdrain.RejectReasonHeader)
		if reason == "" || header(r, logdrain.RejectOffsetHeader) == "" || string(r.Key) != "frame-1" ||
			header(r, logdrain.RejectFrameIDHeader) != "frame-1" {
			t.Errorf("reject %q without its reason, offset or frame id: %v", r.Value, r.Headers)
		}
		kinds[kind] = reason
	}
	if !strings.Contains(kinds[logdrain.RejectSyslog], "pri") || !strings.Contains(kinds[logdrain.RejectRouter], "status") ||
		!strings.Contains(kinds[logdrain.RejectFraming], "count") {
		t.Errorf("reject reasons by kind %q", kinds)
	}
	paths := map[string]bool{}
	for _, r := range consume(t, brokers, logdrain.RouterTopic, 2) {
		paths[string(r.Key)] = true
	}
	if !paths["/a"] || !paths["/c"] {
		t.Errorf("router records of %v, want /a and /c", paths)
	}
	if n := endOffsets(t, brokers, logdrain.LogsTopic); n != 1 {
		t.Errorf("%s holds %d records, want the app line", logdrain.LogsTopic, n)
	}
	s := d.Stats()
	if s.Rejected[logdrain.RejectFraming] != 1 || s.Rejected[logdrain.RejectSyslog] != 1 || s.Rejected[logdrain.RejectRouter] != 1 {
		t.Errorf("rejected %v", s.Rejected)
	}
}

func TestDrainDropsAppLinesWhenToldTo(t *testing.T) {
	b := startBroker(t)
	brokers := b.Addrs()
	url, d := startDrain(t, brokers, logdrain.DrainConfig{DropLogs: true})
	if a := post(t, url, request{body: body(specRouterMsg, specAppMsg, specAppMsg)}); a.status != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", a.status, a.body)
	}
	if s := d.Stats(); s.RouterLines != 1 || s.DroppedLines != 2 || s.LogLines != 0 {
		t.Errorf("stats %+v, want 1 router line and 2 dropped", s)
	}
	if n := endOffsets(t, brokers, logdrain.LogsTopic); n != 0 {
		t.Errorf("%s holds %d records with DropLogs", logdrain.LogsTopic, n)
	}
}

func TestDrainServesHealthAndMetrics(t *testing.T) {
	b := startBroker(t)
	url, _ := startDrain(t, b.Addrs(), logdrain.DrainConfig{})
	post(t, url, request{body: body(specRouterMsg)})
	post(t, url, request{body: []byte("garbage")})

	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(hb), `"ok"`) {
		t.Errorf("healthz %d %s", resp.StatusCode, hb)
	}
	resp, err = http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`logdrain_requests_total{code="204"} 1`,
		`logdrain_requests_total{code="400"} 1`,
		`logdrain_lines_total{to="router"} 1`,
		`sluice_emitter_`,
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestDrainClosesTheConnectionOfAClientTooSlowToSendItsHeaders(t *testing.T) {
	b := startBroker(t)
	url, _ := startDrain(t, b.Addrs(), logdrain.DrainConfig{ReadHeaderTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /logs HTTP/1.1\r\nHost: drain\r\n"); err != nil {
		t.Fatal(err)
	}
	// The rest of the headers never comes: the drain must hang up, which
	// the read sees long before its own deadline.
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = bufio.NewReader(conn).ReadString('\n')
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the drain kept the connection of a client that never finished its headers")
	}
	if err == nil {
		// Go's server may answer 408 before it closes; that is a hang-up too.
		return
	}
}

func TestDrainAnswers408ToAClientTooSlowToSendItsBody(t *testing.T) {
	b := startBroker(t)
	url, d := startDrain(t, b.Addrs(), logdrain.DrainConfig{ReadTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers promise a body of 1000 bytes; 10 come, then nothing.
	if _, err := io.WriteString(conn, "POST /logs HTTP/1.1\r\nHost: drain\r\nContent-Length: 1000\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	if n := d.Stats().Requests[http.StatusRequestTimeout]; n != 1 {
		t.Errorf("counted %d 408s, want 1", n)
	}
}

// TestDrainShutsDownCleanlyPastAConnectionThatNeverSentARequest: an HTTP
// client may dial a spare connection it never uses. Go's server waits for
// such a connection for five seconds on shutdown; the drain closes it and
// reports no error, since no request was in hand.
func TestDrainShutsDownCleanlyPastAConnectionThatNeverSentARequest(t *testing.T) {
	b := startBroker(t)
	d, err := logdrain.NewDrain(logdrain.DrainConfig{
		Brokers: b.Addrs(), Logger: testLogger(), DeliveryTimeout: time.Second,
		Options: []sluice.Opt{sluice.TopicDefaults(testPartitions, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	if a := post(t, url, request{body: body(routerMsg("/a", 1, 10, 200, "r1")), headers: msgCount(1)}); a.status != http.StatusNoContent {
		t.Fatalf("status %d %q", a.status, a.body)
	}
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
}

// TestDrainTakesBodiesOfUpToOneMiBByDefault posts, to a drain configured
// with no limit, a body of exactly 1 MiB, which is taken, and one a byte
// longer, which is answered 413.
func TestDrainTakesBodiesOfUpToOneMiBByDefault(t *testing.T) {
	b := startBroker(t)
	url, _ := startDrain(t, b.Addrs(), logdrain.DrainConfig{})
	const limit = 1 << 20
	// Router frames, then one app line whose length fills the body to
	// exactly size bytes.
	sized := func(size int) ([]byte, int) {
		var body []byte
		frames := 0
		for len(body) < size-2048 {
			body = logdrain.AppendFrame(body, []byte(specRouterMsg+"\n"))
			frames++
		}
		head := "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - "
		left := size - len(body) - len("1234 ")
		body = logdrain.AppendFrame(body, []byte(head+strings.Repeat("x", left-len(head)-1)+"\n"))
		if len(body) != size {
			t.Fatalf("body of %d bytes, want %d", len(body), size)
		}
		return body, frames + 1
	}
	full, frames := sized(limit)
	if a := post(t, url, request{body: full, headers: msgCount(frames)}); a.status != http.StatusNoContent {
		t.Fatalf("body of 1 MiB: status %d %q, want 204", a.status, a.body)
	}
	over, frames := sized(limit + 1)
	if a := post(t, url, request{body: over, headers: msgCount(frames)}); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("body of 1 MiB and a byte: status %d %q, want 413", a.status, a.body)
	}
}
