package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/apps/logdrain"
)

func TestRunLogdrainTakesAuthenticatedBodiesAndServesTheirRouteMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{ch: make(chan string, 16)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "logdrain", "--addr", "127.0.0.1:0", "--in-memory", "--listen", "127.0.0.1:0",
		"--routes-addr", "127.0.0.1:0", "--monitor-addr", "127.0.0.1:0", "--auth", "drain:s3cret", "--state-dir", t.TempDir()})
	cmd.SetOut(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	urls := map[string]string{}
	for len(urls) < 2 {
		select {
		case line := <-out.ch:
			if m := regexp.MustCompile(`^(drain|routes)\s+(http://\S+)`).FindStringSubmatch(line); m != nil {
				urls[m[1]] = m[2]
			}
		case err := <-done:
			t.Fatalf("logdrain exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("logdrain did not print its addresses, got %v", urls)
		}
	}
	msg := `<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - at=info method=GET path="/foo" host=a.herokuapp.com fwd="10.0.0.1" dyno=web.1 connect=5ms service=300ms status=200 bytes=10` + "\n"
	body := logdrain.AppendFrame(nil, []byte(msg))
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"drain", "guess", http.StatusUnauthorized}, {"drain", "s3cret", http.StatusNoContent}} {
		req, _ := http.NewRequest(http.MethodPost, urls["drain"], bytes.NewReader(body))
		req.SetBasicAuth(c.user, c.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("POST as %s:%s: status %d, want %d", c.user, c.pass, resp.StatusCode, c.want)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(urls["routes"] + "/%2Ffoo")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r logdrain.Route
		if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &r) == nil && r.Service.Count == 1 {
			if r.Service.Sum != 300 || r.Connect.Sum != 5 || r.Statuses["200"] != 1 {
				t.Fatalf("route %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics of /foo: last answer %d %s", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("logdrain stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("logdrain did not stop")
	}
}

func TestRunLogdrainRefusesAuthWithoutAPassword(t *testing.T) {
	_, err := run(context.Background(), "run", "logdrain", "--addr", "127.0.0.1:0", "--in-memory", "--auth", "drain")
	if err == nil || !strings.Contains(err.Error(), `--auth "drain": want user:password`) {
		t.Fatalf("got %v", err)
	}
}

func TestRunLogdrainRefusesABodyLimitOrDeliveryTimeoutBelowOne(t *testing.T) {
	for _, c := range []struct{ flag, value, want string }{
		{"--max-body", "-1", "--max-body -1: want a positive number of bytes"},
		{"--max-body", "0", "--max-body 0: want a positive number of bytes"},
		{"--delivery-timeout", "-1s", "--delivery-timeout -1s: want a positive duration"},
		{"--delivery-timeout", "0s", "--delivery-timeout 0s: want a positive duration"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := run(ctx, "run", "logdrain", "--addr", "127.0.0.1:0", "--in-memory", "--listen", "127.0.0.1:0",
			"--routes-addr", "127.0.0.1:0", "--monitor-addr", "", "--state-dir", t.TempDir(), c.flag, c.value)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: got %v, want %q", c.flag, c.value, err, c.want)
		}
	}
}
