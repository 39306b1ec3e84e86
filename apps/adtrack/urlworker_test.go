package adtrack

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sluice-io/sluice/sluicetest"
)

func newURLWorker(t *testing.T) (*URLWorker, *sluicetest.Tester[struct{}]) {
	t.Helper()
	w := DefineURLWorker(fastSender())
	tt, err := sluicetest.New(w.Group)
	if err != nil {
		t.Fatal(err)
	}
	return w, tt
}

func sendRequest(t *testing.T, tt *sluicetest.Tester[struct{}], req Request) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, RequestsTopic, req.Network, b); err != nil {
		t.Fatal(err)
	}
}

func TestURLWorkerPerformsEachRequestAndWritesItsResult(t *testing.T) {
	ok := newNetwork(t, http.StatusNoContent)
	picky := newNetwork(t, http.StatusBadRequest)
	down := newNetwork(t, http.StatusServiceUnavailable)
	w, tt := newURLWorker(t)
	sendRequest(t, tt, Request{ID: "r1", PostbackID: "pb-ok", Network: "ok", Method: "POST", URL: ok.URL + "/conv?x=1",
		Body: `{"a":1}`, Header: map[string]string{"Content-Type": "application/json"}})
	sendRequest(t, tt, Request{ID: "r2", PostbackID: "pb-picky", Network: "picky", Method: "GET", URL: picky.URL + "/pix"})
	sendRequest(t, tt, Request{ID: "r3", PostbackID: "pb-down", Network: "down", Method: "GET", URL: down.URL + "/pix"})

	got := ok.requests()
	if len(got) != 1 || got[0].method != "POST" || got[0].path != "/conv?x=1" || got[0].body != `{"a":1}` ||
		got[0].header.Get("Content-Type") != "application/json" || got[0].header.Get(RequestIDHeader) != "r1" {
		t.Errorf("the network saw %+v", got)
	}
	if n := len(down.requests()); n != 3 {
		t.Errorf("the network that is down saw %d attempts, want 3", n)
	}
	for _, r := range down.requests() {
		if r.header.Get(RequestIDHeader) != "r3" {
			t.Errorf("a retry carried request id %q, want r3", r.header.Get(RequestIDHeader))
		}
	}

	msgs, err := sluicetest.Output(tt, w.Results)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		pb     string
		status Status
		code   int
	}{{"pb-ok", StatusOK, 204}, {"pb-picky", StatusMissingParameter, 400}, {"pb-down", StatusFailed, 503}}
	if len(msgs) != len(want) {
		t.Fatalf("%d results, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		res, err := ParseResult(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if w := want[i]; res.Request.PostbackID != w.pb || res.Status != w.status || res.Code != w.code || string(m.Record.Key) != w.pb {
			t.Errorf("result %d: %s %s %d keyed %q, want %s %s %d", i, res.Request.PostbackID, res.Status, res.Code, m.Record.Key, w.pb, w.status, w.code)
		}
	}
}

func TestURLWorkerRejectsARecordThatIsNotARequest(t *testing.T) {
	w, tt := newURLWorker(t)
	if err := sluicetest.Send(tt, RequestsTopic, "applift", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, RequestsTopic, "applift", []byte(`{"Network":"applift"}`)); err != nil {
		t.Fatal(err)
	}
	recs := tt.Records(DeadLetterTopic)
	if len(recs) != 2 || string(recs[0].Value) != "{not json" {
		t.Fatalf("rejected %v, want both records as they came", recs)
	}
	for _, r := range recs {
		if why, ok := r.Header(RejectedHeader); !ok || why == "" {
			t.Errorf("rejected record %s has no reason", r.Value)
		}
	}
	if msgs, _ := sluicetest.Output(tt, w.Results); len(msgs) != 0 {
		t.Fatalf("results %v, want none", msgs)
	}
}
