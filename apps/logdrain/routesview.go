package logdrain

// The routes view: the route metrics group's table and minute windows,
// served over HTTP as one JSON object per path.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// Route is what the routes view serves of a path:
//
//	{"path":"/foo","service":{"sum":500,"count":2,"average":250.0},
//	 "connect":{"sum":12,"count":2,"average":6.0},"statuses":{"200":2},
//	 "minutes":[{"start":"2026-12-01T11:00:00Z","count":2,"p50":199.4,"p95":300.2,"p99":300.2}]}
type Route struct {
	Path     string           `json:"path"`
	Service  TimingAverage    `json:"service"`
	Connect  TimingAverage    `json:"connect"`
	Statuses map[string]int64 `json:"statuses"`
	// Minutes are the path's minute windows still kept, oldest first.
	Minutes []Minute `json:"minutes"`
	// requests orders the routes of GET /routes.
	requests int64
}

// TimingAverage is a Timing with its average, in milliseconds.
type TimingAverage struct {
	Sum     float64 `json:"sum"`
	Count   int64   `json:"count"`
	Average Decimal `json:"average"`
}

// Decimal is a number that JSON writes with a fraction, "6.0" rather than
// "6", as the average of the original's Redis keys was written.
type Decimal float64

// MarshalJSON writes d in the shortest form that reads back exactly, with
// ".0" added to a whole number.
func (d Decimal) MarshalJSON() ([]byte, error) {
	f := float64(d)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("decimal %v is not a JSON number", f)
	}
	b := strconv.AppendFloat(nil, f, 'f', -1, 64)
	if !strings.ContainsAny(string(b), ".") {
		b = append(b, '.', '0')
	}
	return b, nil
}

// Minute is one minute window of a path: when it starts, how many
// requests it has, and percentiles of their service times in
// milliseconds, within 1% and rounded to the microsecond.
type Minute struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
	P50   float64   `json:"p50"`
	P95   float64   `json:"p95"`
	P99   float64   `json:"p99"`
}

// RoutesView is a continuously updated copy of the route metrics group's
// table and minute windows.
type RoutesView struct {
	table   *sluice.View[RouteStats]
	minutes *sluice.WindowView[*sluice.QuantileSketch]
}

// NewRoutesView returns a view of RoutesTable. It does not connect until
// Run.
func NewRoutesView(opts ...sluice.ViewOpt) (*RoutesView, error) {
	agg, err := minutesAggregator()
	if err != nil {
		return nil, err
	}
	table, err := sluice.NewView(RoutesTable, codec.JSON[RouteStats](), opts...)
	if err != nil {
		return nil, fmt.Errorf("routes view: %w", err)
	}
	minutes, err := sluice.NewWindowView(RoutesWindows, MinutesAggregation, agg.Codec, opts...)
	if err != nil {
		return nil, fmt.Errorf("routes view: %w", err)
	}
	return &RoutesView{table: table, minutes: minutes}, nil
}

// Run copies the table and its windows until ctx is done.
func (v *RoutesView) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return v.table.Run(gctx) })
	g.Go(func() error { return v.minutes.Run(gctx) })
	return g.Wait()
}

// WaitReady blocks until the view has restored the table and the windows,
// ctx is done or Run failed.
func (v *RoutesView) WaitReady(ctx context.Context) error {
	if err := v.table.WaitReady(ctx); err != nil {
		return err
	}
	return v.minutes.WaitReady(ctx)
}

// Route returns the metrics of path, or an error wrapping
// sluice.ErrNotFound for a path without requests.
func (v *RoutesView) Route(path string) (Route, error) {
	s, err := v.table.Get(path)
	if err != nil {
		return Route{}, fmt.Errorf("route %q: %w", path, err)
	}
	return v.route(path, s)
}

// Routes returns the metrics of every path, the busiest first (ties in
// path order).
func (v *RoutesView) Routes() ([]Route, error) {
	var (
		routes []Route
		err    error
	)
	iterErr := v.table.Iterate("", "", func(path string, s RouteStats) bool {
		var r Route
		if r, err = v.route(path, s); err != nil {
			return false
		}
		routes = append(routes, r)
		return true
	})
	if err = errors.Join(iterErr, err); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	sort.SliceStable(routes, func(i, j int) bool { return routes[i].requests > routes[j].requests })
	return routes, nil
}

func (v *RoutesView) route(path string, s RouteStats) (Route, error) {
	r := Route{
		Path:     path,
		Service:  TimingAverage{Sum: s.Service.Sum, Count: s.Service.Count, Average: Decimal(s.Service.Average())},
		Connect:  TimingAverage{Sum: s.Connect.Sum, Count: s.Connect.Count, Average: Decimal(s.Connect.Average())},
		Statuses: s.Statuses,
		Minutes:  []Minute{},
		requests: s.Requests,
	}
	if r.Statuses == nil {
		r.Statuses = map[string]int64{}
	}
	var merr error
	err := v.minutes.Windows(path, time.Time{}, time.Time{}, func(w sluice.Window, sk *sluice.QuantileSketch) bool {
		var m Minute
		if m, merr = minuteOf(w, sk); merr != nil {
			return false
		}
		r.Minutes = append(r.Minutes, m)
		return true
	})
	if err = errors.Join(err, merr); err != nil {
		return Route{}, fmt.Errorf("route %q: minutes: %w", path, err)
	}
	return r, nil
}

// minuteOf reads the Minute of a window's sketch.
func minuteOf(w sluice.Window, sk *sluice.QuantileSketch) (Minute, error) {
	m := Minute{Start: w.Start.UTC(), Count: sk.Count()}
	for _, q := range []struct {
		q   float64
		dst *float64
	}{{0.50, &m.P50}, {0.95, &m.P95}, {0.99, &m.P99}} {
		x, err := sk.Quantile(q.q)
		if err != nil {
			return Minute{}, err
		}
		*q.dst = math.Round(x*1000) / 1000
	}
	return m, nil
}

// Handler returns the view's HTTP handler:
//
//   - GET /routes serves every path's Route in a JSON array, the busiest
//     first;
//   - GET /routes/{path} serves one Route, the path URL-escaped as one
//     segment (/routes/%2Ffoo for /foo), or 404 with a JSON error;
//   - any other GET is answered with a JSON error: 400 under /routes/ (no
//     path, or a path not escaped as one segment), 404 elsewhere.
//
// Both answer 503 while the view is not restored yet.
func (v *RoutesView) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) {
		routes, err := v.Routes()
		if err != nil {
			writeError(w, v.statusOf(err), err)
			return
		}
		if routes == nil {
			routes = []Route{}
		}
		writeJSON(w, routes)
	})
	mux.HandleFunc("GET /routes/{path}", func(w http.ResponseWriter, r *http.Request) {
		path := r.PathValue("path")
		route, err := v.Route(path)
		if err != nil {
			writeError(w, v.statusOf(err), err)
			return
		}
		writeJSON(w, route)
	})
	mux.HandleFunc("GET /routes/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%s: give one path, URL-escaped as one segment: /routes/%%2Ffoo for /foo", r.URL.EscapedPath()))
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such address %s: the routes view serves GET /routes and GET /routes/{path}", r.URL.EscapedPath()))
	})
	return mux
}

// statusOf maps a view's error to an HTTP status: 404 for a path without
// requests, 503 while the view is not running (it restores, or stopped).
func (v *RoutesView) statusOf(err error) int {
	switch {
	case errors.Is(err, sluice.ErrNotFound):
		return http.StatusNotFound
	case v.table.State() != sluice.ViewRunning || v.minutes.State() != sluice.ViewRunning:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("encode json: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, err error) {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
