package adtrack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// DefaultStatsAddr is where the CLI serves the stats by default.
const DefaultStatsAddr = "127.0.0.1:9097"

// NewStatsView returns a view of the stats group's table, configured by
// opts, for StatsHandler.
func NewStatsView(opts ...sluice.ViewOpt) (*sluice.View[Counters], error) {
	return sluice.NewView(StatsGroup+"-table", codec.JSON[Counters](), opts...)
}

// StatsHandler serves the counters of v, a view of the stats group's table,
// as JSON objects of counter name → count:
//
//	GET /clickstats/{campaign_link_id}  a campaign link's clicks and conversions
//	GET /pbstats/{postback_id}          a postback's results by response code
//	GET /attribution                    installs matched and unmatched
//
// A campaign link or postback with no counts yet is a 404 with a JSON
// error, {"error": "..."}; the attribution before any install is {}. A
// view that is not yet running answers 503, and a method other than GET or
// HEAD 405.
func StatsHandler(v *sluice.View[Counters]) http.Handler {
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, key, what string, emptyOK bool) {
		c, err := v.Get(key)
		switch {
		case errors.Is(err, sluice.ErrNotFound) && emptyOK:
			writeStatsJSON(w, http.StatusOK, Counters{})
		case errors.Is(err, sluice.ErrNotFound):
			writeStatsJSON(w, http.StatusNotFound, map[string]string{"error": what + " has no stats"})
		case err != nil && v.State() != sluice.ViewRunning:
			writeStatsJSON(w, http.StatusServiceUnavailable, map[string]string{"error": fmt.Sprintf("stats are not ready: the view is %s", v.State())})
		case err != nil:
			writeStatsJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		default:
			writeStatsJSON(w, http.StatusOK, c)
		}
	}
	mux.HandleFunc("GET /clickstats/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		serve(w, ClickStatsKey(id), fmt.Sprintf("campaign link %q", id), false)
	})
	mux.HandleFunc("GET /pbstats/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		serve(w, PostbackStatsKey(id), fmt.Sprintf("postback %q", id), false)
	})
	mux.HandleFunc("GET /attribution", func(w http.ResponseWriter, _ *http.Request) {
		serve(w, AttributionStatsKey, "attribution", true)
	})
	// The stats are read only: another method on a path they are served at
	// is a 405, not a 404 that says there are no stats there.
	for _, path := range []string{"/clickstats/{id}", "/pbstats/{id}", "/attribution"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			writeStatsJSON(w, http.StatusMethodNotAllowed, map[string]string{
				"error": fmt.Sprintf("method %s not allowed: the stats are read with GET", r.Method),
			})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatsJSON(w, http.StatusNotFound, map[string]string{
			"error": fmt.Sprintf("no stats at %s: try GET /clickstats/{campaign_link_id}, /pbstats/{postback_id} or /attribution", r.URL.Path),
		})
	})
	return mux
}

func writeStatsJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encode json: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
