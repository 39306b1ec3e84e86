package adtrack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/memory"
)

func startBroker(t *testing.T) []string {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Addr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()
}

// getJSON gets url and decodes its JSON body into v when the status is
// want.
func getJSON(t *testing.T, url string, want int, v any) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", url, b, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

func TestStatsViewServesCountersOverHTTP(t *testing.T) {
	brokers := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proc, err := sluice.NewProcessor(DefineStats().Group, sluice.Brokers(brokers...), sluice.Storage(memory.Builder()))
	if err != nil {
		t.Fatal(err)
	}
	view, err := NewStatsView(sluice.Brokers(brokers...), sluice.Storage(memory.Builder()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- proc.Run(ctx) }()
	go func() { done <- view.Run(ctx) }()
	srv := httptest.NewServer(StatsHandler(view))
	defer srv.Close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	for _, ev := range []Event{testClick("46", testAdid, t0, t0.Add(time.Hour)), testClick("46", "", t0, t0.Add(time.Hour))} {
		if err := cl.ProduceSync(pctx, &kgo.Record{Topic: ClicksTopic, Value: ev.AppendWire(nil)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	res := Result{Request: Request{PostbackID: "applift-ist"}, Status: StatusOK, Code: 200, At: t0}
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: ResultsTopic, Value: res.Event().AppendWire(nil)}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	want := Counters{"count": 2, "country:DE": 2, "platform:ios": 2, "device:iPhone": 2, "device_type:smartphone": 2, "with_adid": 1}
	var got Counters
	for deadline := time.Now().Add(30 * time.Second); ; {
		got = Counters{}
		status, ctype := getJSON(t, srv.URL+"/clickstats/46", http.StatusOK, &got)
		if status == http.StatusOK && reflect.DeepEqual(got, want) {
			if ctype != "application/json" {
				t.Errorf("content type %q", ctype)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clickstats of 46: %d %v, want %v", status, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		got = Counters{}
		status, _ := getJSON(t, srv.URL+"/pbstats/applift-ist", http.StatusOK, &got)
		if status == http.StatusOK && reflect.DeepEqual(got, Counters{"count": 1, "respcode:200": 1}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pbstats of applift-ist: %d %v", status, got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, path := range []string{"/clickstats/999", "/pbstats/nope", "/elsewhere"} {
		var e map[string]string
		if status, ctype := getJSON(t, srv.URL+path, http.StatusNotFound, &e); status != http.StatusNotFound || ctype != "application/json" || e["error"] == "" {
			t.Errorf("GET %s: %d %s %v, want 404 with a JSON error", path, status, ctype, e)
		}
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("stopped with %v", err)
		}
	}
}

func TestStatsHandlerAnswersOtherMethodsWith405AndAJSONError(t *testing.T) {
	// The handler answers a method it does not serve before it reads the
	// view, so the view need not run.
	view, err := NewStatsView(sluice.Brokers("127.0.0.1:1"), sluice.Storage(memory.Builder()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(StatsHandler(view))
	defer srv.Close()
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/attribution"},
		{http.MethodPut, "/clickstats/46"},
		{http.MethodDelete, "/pbstats/7games-mac"},
	} {
		req, err := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]string
		decodeErr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" ||
			resp.Header.Get("Content-Type") != "application/json" || decodeErr != nil || !strings.Contains(e["error"], r.method) {
			t.Errorf("%s %s: %d, Allow %q, %s %v (%v); want 405 with Allow and a JSON error naming the method",
				r.method, r.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), e, decodeErr)
		}
	}
}
