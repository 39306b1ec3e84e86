package logdrain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	infoLine = `at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503-3159-4d7c-8287-3ba52d7c44df fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360`
	h12Line  = `at=error code=H12 desc="Request timeout" method=GET path="/" host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0 protocol=https`
	h10Line  = `at=error code=H10 desc="App crashed" method=GET path="/favicon.ico" host=myapp.herokuapp.com fwd=17.17.17.17 dyno= connect= service= status=503 bytes=`
	ipv6Line = `at=info method=POST path="/api/v1/items?id=7&x=a b" host=api.example.com fwd="2001:db8::1, 203.0.113.7,::ffff:10.0.0.1" dyno=web.3 connect=1ms service=23ms status=201 bytes=12 protocol=https tls_version=tls1.3 sock=client`
)

var routerSeeds = []string{
	infoLine, h12Line, h10Line, ipv6Line, "at=info\n", `path="/a\"b\\c"`, `k="" x=y`, `a=b=c`, `=x`, `bare`, `path="open`, `status=abc`,
}

func sameRouterLine(a, b RouterLine) bool {
	return a.At == b.At && a.Code == b.Code && a.Desc == b.Desc && a.Method == b.Method && a.Path == b.Path &&
		a.Host == b.Host && a.RequestID == b.RequestID && slices.Equal(a.Fwd, b.Fwd) && a.Dyno == b.Dyno &&
		a.Connect == b.Connect && a.HasConnect == b.HasConnect && a.Service == b.Service && a.HasService == b.HasService &&
		a.Status == b.Status && a.Bytes == b.Bytes && a.Protocol == b.Protocol && slices.Equal(a.Fields, b.Fields)
}

func TestParseRouterLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want RouterLine
	}{
		{"info line of the spec", infoLine, RouterLine{
			At: "info", Method: "GET", Path: "/haiwen/seafile", Host: "issuetriage.herokuapp.com",
			RequestID: "cf59a503-3159-4d7c-8287-3ba52d7c44df", Fwd: []string{"144.76.27.118"}, Dyno: "web.2",
			Connect: 0, HasConnect: true, Service: 166 * time.Millisecond, HasService: true, Status: 200, Bytes: 36360,
		}},
		{"error line with code and desc", h12Line, RouterLine{
			At: "error", Code: "H12", Desc: "Request timeout", Method: "GET", Path: "/", Host: "myapp.herokuapp.com",
			RequestID: "8601b555-6a83-4c12-8269-97c8e32cdb22", Fwd: []string{"204.204.204.204"}, Dyno: "web.1",
			HasConnect: true, Service: 30 * time.Second, HasService: true, Status: 503, Protocol: "https",
		}},
		{"error line with empty values", h10Line, RouterLine{
			At: "error", Code: "H10", Desc: "App crashed", Method: "GET", Path: "/favicon.ico", Host: "myapp.herokuapp.com",
			Fwd: []string{"17.17.17.17"}, Status: 503,
		}},
		{"IPv6, several fwd addresses, unknown keys", ipv6Line, RouterLine{
			At: "info", Method: "POST", Path: "/api/v1/items?id=7&x=a b", Host: "api.example.com",
			Fwd: []string{"2001:db8::1", "203.0.113.7", "::ffff:10.0.0.1"}, Dyno: "web.3",
			Connect: time.Millisecond, HasConnect: true, Service: 23 * time.Millisecond, HasService: true,
			Status: 201, Bytes: 12, Protocol: "https",
		}},
		{"fields in another order", `status=404 path=/x at=info`, RouterLine{At: "info", Path: "/x", Status: 404}},
		{"escaped quote and backslash in a quoted value", `path="/a\"b\\c\d"`, RouterLine{Path: `/a"b\c\d`}},
		{"fwd with a leading space", `fwd=" 144.76.27.118"`, RouterLine{Fwd: []string{"144.76.27.118"}}},
		{"bare milliseconds and other units", `connect=7 service=1.5s`, RouterLine{Connect: 7 * time.Millisecond, HasConnect: true, Service: 1500 * time.Millisecond, HasService: true}},
		{"trailing newline and extra spaces", "  at=info   status=200 \n", RouterLine{At: "info", Status: 200}},
		{"the last of a repeated key counts", `status=200 status=500`, RouterLine{Status: 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRouterLine(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Fields = got.Fields
			if !sameRouterLine(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRouterLineKeepsEveryFieldInOrder(t *testing.T) {
	r, err := ParseRouterLine(ipv6Line)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range r.Fields {
		keys = append(keys, f.Key)
	}
	want := "at method path host fwd dyno connect service status bytes protocol tls_version sock"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys %q, want %q", got, want)
	}
	if v, ok := r.Get("tls_version"); !ok || v != "tls1.3" {
		t.Errorf("tls_version = %q, %v", v, ok)
	}
	if _, ok := r.Get("missing"); ok {
		t.Error("Get found a key the line does not have")
	}
}

func TestParseRouterLineErrorsNameTheReason(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{"", "bad router line: no fields"},
		{"   \n", "bad router line: no fields"},
		{"at=info bare", `bad router line: at byte 8: "bare" is not key=value`},
		{"=x", "bad router line: at byte 0: a value without a key"},
		{`path="/open`, "bad router line: at byte 5: unterminated quoted value of path"},
		{`path="/a"b`, "bad router line: at byte 9: path: text right after the closing quote"},
		{"status=abc", `bad router line: status: "abc" is not an HTTP status`},
		{"status=42", `bad router line: status: "42" is not an HTTP status`},
		{"bytes=-1", `bad router line: bytes: "-1" is not a byte count`},
		{"connect=fast", `bad router line: connect: "fast" is not a duration`},
		{"service=-3ms", `bad router line: service: "-3ms" is not a duration`},
	}
	for _, tt := range tests {
		_, err := ParseRouterLine(tt.line)
		if err == nil || err.Error() != tt.want || !errors.Is(err, ErrRouterLine) {
			t.Errorf("ParseRouterLine(%q) error %v, want %q", tt.line, err, tt.want)
		}
	}
}

func TestAppendFieldsQuotesWhatNeedsIt(t *testing.T) {
	fields := []Field{{"path", "/a b"}, {"desc", `say "hi"`}, {"dyno", ""}, {"q", `"x`}, {"w", `a\b`}, {"at", "info"}}
	got := string(AppendFields(nil, fields))
	want := `path="/a b" desc="say \"hi\"" dyno= q="\"x" w=a\b at=info`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r, err := ParseRouterLine(got)
	if err != nil || !slices.Equal(r.Fields, fields) {
		t.Errorf("parsed back %+v, %v", r.Fields, err)
	}
}

func TestIsRouter(t *testing.T) {
	m, err := ParseMessage([]byte(routerMsg))
	if err != nil {
		t.Fatal(err)
	}
	if !IsRouter(&m) {
		t.Error("the spec's router message is not a router line")
	}
	m, err = ParseMessage([]byte(stateMsg))
	if err != nil {
		t.Fatal(err)
	}
	if IsRouter(&m) {
		t.Error("an app line is taken for a router line")
	}
}

// FuzzParseRouterLine checks that ParseRouterLine never panics and that the
// fields of a line it parses, written again with AppendFields, parse to the
// same RouterLine.
func FuzzParseRouterLine(f *testing.F) {
	for _, s := range routerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRouterLine(line)
		if err != nil {
			return
		}
		out := string(AppendFields(nil, r.Fields))
		r2, err := ParseRouterLine(out)
		if err != nil {
			t.Fatalf("written again as %q, it does not parse: %v", out, err)
		}
		if !sameRouterLine(r, r2) {
			t.Fatalf("written again as %q:\n got %+v\nwant %+v", out, r2, r)
		}
	})
}
