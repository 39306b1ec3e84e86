package logdrain_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/logdrain"
	"github.com/sluice-io/sluice/sluicetest"
)

// record parses a router line's message into the Record the drain writes.
func record(t *testing.T, msg string) logdrain.Record {
	t.Helper()
	m, err := logdrain.ParseMessage([]byte(msg + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := logdrain.ParseRouterLine(m.Msg)
	if err != nil {
		t.Fatal(err)
	}
	return logdrain.NewRecord(&m, &r)
}

func newRoutesTester(t *testing.T, opts ...sluicetest.Option) *sluicetest.Tester[logdrain.RouteStats] {
	t.Helper()
	g, err := logdrain.DefineRoutesGroup(logdrain.RoutesConfig{Grace: 5 * time.Second, Keep: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := sluicetest.New(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// minute0 is a whole minute, the start of the first window of the tests.
var minute0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sendRoute(t *testing.T, tt *sluicetest.Tester[logdrain.RouteStats], msg string, at time.Time) {
	t.Helper()
	rec := record(t, msg)
	if err := sluicetest.Send(tt, logdrain.RouterTopic, rec.Router.Path, rec, sluicetest.WithTimestamp(at)); err != nil {
		t.Fatal(err)
	}
}

func routeRow(t *testing.T, tt *sluicetest.Tester[logdrain.RouteStats], path string) logdrain.RouteStats {
	t.Helper()
	s, ok, err := tt.Row(path)
	if err != nil || !ok {
		t.Fatalf("row of %s: found %v, %v", path, ok, err)
	}
	return s
}

func TestRoutesSumCountAndAverageServiceAndConnectPerPathAsTheSpecSays(t *testing.T) {
	tt := newRoutesTester(t)
	sendRoute(t, tt, routerMsg("/foo", 5, 300, 200, "r1"), minute0)
	sendRoute(t, tt, routerMsg("/foo", 7, 200, 200, "r2"), minute0.Add(time.Second))
	sendRoute(t, tt, routerMsg("/bar", 1, 30, 404, "r3"), minute0.Add(2*time.Second))
	// An error line whose dyno never answered has no connect or service.
	sendRoute(t, tt, `<158>1 2016-05-04T04:57:12+00:00 host heroku router - at=error code=H10 desc="App crashed" method=GET path="/bar" host=a.herokuapp.com fwd="2001:db8::1" dyno= connect= service= status=503 bytes=`, minute0.Add(3*time.Second))

	foo := routeRow(t, tt, "/foo")
	if foo.Service != (logdrain.Timing{Sum: 500, Count: 2}) || foo.Connect != (logdrain.Timing{Sum: 12, Count: 2}) ||
		foo.Service.Average() != 250 || foo.Connect.Average() != 6 || foo.Statuses["200"] != 2 || len(foo.Statuses) != 1 || foo.Requests != 2 {
		t.Errorf("/foo %+v, want service 500/2, connect 12/2, 2 of status 200", foo)
	}
	bar := routeRow(t, tt, "/bar")
	if bar.Service != (logdrain.Timing{Sum: 30, Count: 1}) || bar.Connect != (logdrain.Timing{Sum: 1, Count: 1}) ||
		bar.Statuses["404"] != 1 || bar.Statuses["503"] != 1 || bar.Requests != 2 {
		t.Errorf("/bar %+v, want the error line counted by status only", bar)
	}
}

func TestRoutesCloseEachMinuteWithItsCountAndPercentiles(t *testing.T) {
	tt := newRoutesTester(t, sluicetest.Partitions(1))
	// 100 requests of 1…100ms in the first minute, 2 in the second.
	for i := 1; i <= 100; i++ {
		sendRoute(t, tt, routerMsg("/p", 0, i, 200, fmt.Sprint(i)), minute0.Add(time.Duration(i)*100*time.Millisecond))
	}
	sendRoute(t, tt, routerMsg("/p", 0, 40, 200, "b1"), minute0.Add(time.Minute+time.Second))
	sendRoute(t, tt, routerMsg("/p", 0, 80, 200, "b2"), minute0.Add(time.Minute+2*time.Second))
	// Stream time past the second minute plus grace closes both.
	sendRoute(t, tt, routerMsg("/q", 0, 1, 200, "c1"), minute0.Add(3*time.Minute))

	var got []logdrain.RouteMinute
	for _, r := range tt.Records(logdrain.RouteMinutesTopic) {
		var m logdrain.RouteMinute
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("minute %s: %v", r.Value, err)
		}
		if r.Key != m.Path {
			t.Errorf("minute of %s keyed %q", m.Path, r.Key)
		}
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("closed minutes %+v, want the two of /p", got)
	}
	first, second := got[0], got[1]
	if first.Path != "/p" || !first.Start.Equal(minute0) || first.Count != 100 ||
		!within(first.P50, 50) || !within(first.P95, 95) || !within(first.P99, 99) {
		t.Errorf("first minute %+v, want 100 requests, p50 50, p95 95, p99 99 within 1%%", first)
	}
	// Of two values, DDSketch ranks every quantile below 1 at the lower.
	if !second.Start.Equal(minute0.Add(time.Minute)) || second.Count != 2 || !within(second.P50, 40) || !within(second.P99, 40) {
		t.Errorf("second minute %+v, want 2 requests, p50 and p99 40", second)
	}
}

// within reports whether got is want within the sketches' 1%.
func within(got, want float64) bool { return math.Abs(got-want) <= want*0.01 }

func TestRoutesCountEachRecordOnceExactlyOnceAcrossACrash(t *testing.T) {
	tt := newRoutesTester(t, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(sluice.ExactlyOnce)))
	sendRoute(t, tt, routerMsg("/foo", 5, 300, 200, "r1"), minute0)
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	sendRoute(t, tt, routerMsg("/foo", 7, 200, 200, "r2"), minute0.Add(time.Second))
	tt.Crash()
	if err := tt.Commit(); err != nil {
		t.Fatal(err)
	}
	if foo := routeRow(t, tt, "/foo"); foo.Service != (logdrain.Timing{Sum: 500, Count: 2}) || foo.Statuses["200"] != 2 {
		t.Errorf("/foo after a crash %+v, want each request counted once", foo)
	}
}

func TestRoutesDeadLetterARecordThatIsNotARouterLineAndKeepTheRow(t *testing.T) {
	tt := newRoutesTester(t, sluicetest.ProcessorOptions(sluice.OnError(sluice.DeadLetter(logdrain.RoutesDeadLetters))))
	sendRoute(t, tt, routerMsg("/foo", 5, 300, 200, "r1"), minute0)
	if err := tt.SendRaw(logdrain.RouterTopic, "/foo", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Send(tt, logdrain.RouterTopic, "/foo", logdrain.Record{App: "app", Msg: "no router fields"}); err != nil {
		t.Fatal(err)
	}
	dl := tt.DeadLetters()
	if len(dl) != 2 {
		t.Fatalf("dead letters %v, want the two records", dl)
	}
	if kind, _ := dl[1].Header(sluice.HeaderError); !strings.Contains(kind, "not a router line") {
		t.Errorf("dead letter error %q", kind)
	}
	if foo := routeRow(t, tt, "/foo"); foo.Requests != 1 {
		t.Errorf("/foo %+v, want the router line alone counted", foo)
	}
}
