package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// topicExists asks the broker whether topic exists.
func topicExists(t *testing.T, b *broker.Broker, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return topics.Has(topic)
}

// A view started before the group that owns its table waits for the table
// topic instead of creating it with its own TopicDefaults, which would give
// the table another partition count than the group's inputs.
func TestViewStartedBeforeItsGroupWaitsForTheTableTopic(t *testing.T) {
	b := startBroker(t)
	const table = "early-table"
	// The view's defaults say 4 partitions; the group's input has 2.
	v, err := sluice.NewView(table, codec.JSON[counter](), viewOpts(b, 4)...)
	if err != nil {
		t.Fatal(err)
	}
	view := runInBackground(t, v.Run)
	waitFor(t, 10*time.Second, func() error {
		if s := v.Stats(); s.State != sluice.ViewWaiting {
			return fmt.Errorf("view state %s, want waiting", s.State)
		}
		return nil
	})
	if topicExists(t, b, table) {
		t.Fatalf("the waiting view created %s", table)
	}

	em := newEmitter(t, "early-clicks", emitterOpts(b, 2))
	emitAll(t, em, "a", "x", "b", "x", "a", "x")
	proc := runProcessor(t, defineCounter("early", "early-clicks"), processorOpts(b, 2, t.TempDir())...)
	expectCounts(t, v, map[string]int64{"a": 2, "b": 1}, 30*time.Second)
	if s := v.Stats(); s.State != sluice.ViewRunning {
		t.Errorf("view state %s after it served rows, want running", s.State)
	}
	select {
	case <-proc.done:
		t.Fatalf("group stopped: %v", proc.err)
	default:
	}
	proc.stop(t)
	view.stop(t)
}

// With TopicWait a view gives up on a table topic that does not appear, with
// an error that says so, and creates nothing.
func TestViewWithTopicWaitFailsClearlyWhenTheTableTopicNeverAppears(t *testing.T) {
	b := startBroker(t)
	const table = "never-table"
	v, err := sluice.NewView(table, codec.String(), append(viewOpts(b, 2), sluice.TopicWait(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = v.Run(ctx)
	if !errors.Is(err, sluice.ErrTopicNotFound) {
		t.Fatalf("Run = %v, want an error wrapping ErrTopicNotFound", err)
	}
	t.Logf("Run: %v", err)
	if ctx.Err() != nil {
		t.Fatalf("Run gave up only when the test's context ended")
	}
	if topicExists(t, b, table) {
		t.Fatalf("the view created %s", table)
	}
	if werr := v.WaitReady(ctx); !errors.Is(werr, sluice.ErrTopicNotFound) {
		t.Errorf("WaitReady = %v, want the error Run returned", werr)
	}
}

// heldRestoreStore lets a test hold a view's restore inside its first write: the
// row is in the store, and the write has not returned.
type heldRestoreStore struct {
	store.Store
	once    sync.Once
	written chan struct{}
	release chan struct{}
}

func (s *heldRestoreStore) Apply(changes []store.Change, offset int64) error {
	err := s.Store.Apply(changes, offset)
	s.once.Do(func() {
		close(s.written)
		<-s.release
	})
	return err
}

// A view answers from its table only once it is running: a partly restored
// store would answer ErrNotFound for rows it has not read yet, and a
// readiness probe would say restoring while Get serves.
func TestViewServesNoRowWhileRestoring(t *testing.T) {
	b := startBroker(t)
	const table = "held-restore-table"
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(table))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	compact := "compact"
	if _, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, -1, map[string]*string{"cleanup.policy": &compact}, table); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Key: []byte("a"), Value: []byte("restored")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	held := &heldRestoreStore{written: make(chan struct{}), release: make(chan struct{})}
	storage := func(name string, p int32) (store.Store, error) {
		st, err := memory.Builder()(name, p)
		held.Store = st
		return held, err
	}
	v, err := sluice.NewView(table, codec.String(), append(viewOpts(b, 1), sluice.Storage(storage))...)
	if err != nil {
		t.Fatal(err)
	}
	view := runInBackground(t, v.Run)
	release := sync.OnceFunc(func() { close(held.release) })
	t.Cleanup(release)
	select {
	case <-held.written:
	case <-time.After(30 * time.Second):
		t.Fatalf("the view did not restore its row; state %s", v.State())
	}

	if s := v.State(); s != sluice.ViewRestoring {
		t.Fatalf("view state %s inside its restore, want restoring", s)
	}
	if got, err := v.Get("a"); err == nil || errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("restoring view: Get(a) = %q, %v; want an error saying it is not running", got, err)
	}
	if _, err := v.Has("a"); err == nil {
		t.Errorf("restoring view: Has(a) gave no error")
	}
	if err := v.Iterate("", "", func(string, string) bool { return true }); err == nil {
		t.Errorf("restoring view: Iterate gave no error")
	}
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("restoring view: GET /a = %d %s, want 503", resp.StatusCode, body)
	}

	release()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatalf("view not ready after its restore went on: %v", err)
	}
	if s := v.State(); s != sluice.ViewRunning {
		t.Errorf("ready view state %s, want running", s)
	}
	if got, err := v.Get("a"); err != nil || got != "restored" {
		t.Errorf("running view: Get(a) = %q, %v; want restored", got, err)
	}
	view.stop(t)
}

// A view whose Run has returned answers ErrClosed, as ErrClosed says, and
// its Handler a 503 saying so, rather than claiming it is not running yet.
func TestViewUsedAfterRunReturnedReportsErrClosed(t *testing.T) {
	b := startBroker(t)
	em, err := sluice.NewEmitter("ended-view-table", codec.String(), emitterOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Emit(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	_ = em.Close()
	v, err := sluice.NewView("ended-view-table", codec.String(), viewOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("k"); err == nil || errors.Is(err, sluice.ErrClosed) {
		t.Fatalf("get before Run: %v, want an error that is not ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("k"); !errors.Is(err, sluice.ErrClosed) {
		t.Errorf("get after Run returned: %v, want ErrClosed", err)
	}
	if _, err := v.Has("k"); !errors.Is(err, sluice.ErrClosed) {
		t.Errorf("has after Run returned: %v, want ErrClosed", err)
	}
	if err := v.Iterate("", "", func(string, string) bool { return true }); !errors.Is(err, sluice.ErrClosed) {
		t.Errorf("iterate after Run returned: %v, want ErrClosed", err)
	}
	rec := httptest.NewRecorder()
	v.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/k", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "closed") {
		t.Errorf("GET /k after Run returned: %d %s, want 503 saying the view is closed", rec.Code, rec.Body)
	}
}

// A row whose value is NaN or infinite, which JSON has no number for, is
// served as the string "NaN", "+Inf" or "-Inf" instead of a 500.
func TestViewHandlerServesNonFiniteValuesAsStrings(t *testing.T) {
	b := startBroker(t)
	c := sluice.Sum[string, float64](func(string) float64 { return 0 }).Codec
	em, err := sluice.NewEmitter("temperatures", c, emitterOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{"nan": math.NaN(), "hot": math.Inf(1), "cold": math.Inf(-1), "mild": 21.5} {
		if err := em.Emit(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	_ = em.Close()
	v := startView(t, "temperatures", c, viewOpts(b, 2)...)
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	for key, want := range map[string]string{"nan": `"NaN"`, "hot": `"+Inf"`, "cold": `"-Inf"`, "mild": `21.5`} {
		resp, err := http.Get(srv.URL + "/" + key)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
			t.Errorf("GET /%s: %d %s, want 200 %s", key, resp.StatusCode, body, want)
		}
	}
}

// A key that looks like a path ("/api/users", "a//b", "a/../b") is served
// its own row, given as it is or escaped, not redirected to another key's;
// a method other than GET or HEAD gets a JSON 405.
func TestViewHandlerServesKeysThatLookLikePaths(t *testing.T) {
	b := startBroker(t)
	em, err := sluice.NewEmitter("routes", codec.String(), emitterOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"/api/users", "a//b", "a/../b", "a/./b", "b", "a/b", "api/users", "x/"}
	for _, k := range keys {
		if err := em.Emit(t.Context(), k, "row of "+k); err != nil {
			t.Fatal(err)
		}
	}
	_ = em.Close()
	v := startView(t, "routes", codec.String(), viewOpts(b, 2)...)
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, path string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type"), strings.TrimSpace(string(body))
	}
	for _, k := range keys {
		for _, path := range []string{"/" + k, "/" + url.PathEscape(k)} {
			if code, _, body := get("GET", path); code != http.StatusOK || body != `"row of `+k+`"` {
				t.Errorf("GET %s: %d %s, want the row of %q", path, code, body, k)
			}
		}
	}
	if code, ctype, body := get("POST", "/b"); code != http.StatusMethodNotAllowed || ctype != "application/json" || !strings.Contains(body, "POST") {
		t.Errorf("POST /b: %d %s %s, want a JSON 405", code, ctype, body)
	}
}
