package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/internal/jsonvalue"
)

// DefaultAddr is where Listen listens when given no address: loopback only.
const DefaultAddr = "127.0.0.1:9096"

const (
	// sampleInterval is how often the records per second of each group are
	// sampled; history is how many samples are kept.
	sampleInterval = time.Second
	history        = 300
	// defaultLimit and maxLimit bound the rows of one range request.
	defaultLimit = 20
	maxLimit     = 1000
	// tokenCookie carries the token from the page to its API requests.
	tokenCookie = "sluice_monitor_token"
)

//go:embed assets
var assets embed.FS

// Processor is what the monitor shows of a processor: any
// *sluice.Processor[V].
type Processor interface {
	Stats() sluice.Stats
}

// Emitter is what the monitor shows of an emitter: any *sluice.Emitter[V].
type Emitter interface {
	Stats() sluice.EmitterStats
}

// Opt configures a Monitor.
type Opt func(*Monitor)

// Processors adds processors to the page, each shown as its group.
func Processors(ps ...Processor) Opt {
	return func(m *Monitor) { m.procs = appendSet(m.procs, ps) }
}

// Emitters adds emitters to the page.
func Emitters(es ...Emitter) Opt {
	return func(m *Monitor) { m.emitters = appendSet(m.emitters, es) }
}

// appendSet appends the items that are not nil.
func appendSet[T comparable](to, items []T) []T {
	var none T
	for _, it := range items {
		if it != none {
			to = append(to, it)
		}
	}
	return to
}

// Metrics serves the metrics of g at /metrics in the Prometheus text
// format. Default: no /metrics.
func Metrics(g prometheus.Gatherer) Opt {
	return func(m *Monitor) { m.gatherer = g }
}

// Token requires every request, the page included, to carry token: as
// "Authorization: Bearer <token>", or once as ?token=<token> on the page,
// which then keeps it in a cookie for its own requests. Requests without it
// get status 401. Default: no token.
func Token(token string) Opt {
	return func(m *Monitor) { m.token = token }
}

// AllowRemote lets Listen listen on addresses other than loopback without a
// Token. Default: Listen refuses to.
func AllowRemote() Opt {
	return func(m *Monitor) { m.allowRemote = true }
}

// Monitor is the web monitor of one process: an http.Handler that serves a
// page listing its groups (partitions, offsets, lag, records per second,
// table sizes, last errors), views (with a table browser) and emitters,
// refreshed every second from a JSON API; and /metrics when Metrics is
// given. Routes:
//
//	GET /                                   the page
//	GET /api/state                          everything the page shows, as JSON
//	GET /api/views/{view}/keys/{key}        a view's row of key: the rest of the path, unescaped, as it is
//	GET /api/views/{view}/rows?from=&to=&limit=
//	                                        a view's rows with keys in [from, to), at most limit (default 20, at most 1000)
//	GET /metrics                            the metrics, with Metrics
//	GET /pages/{page}/                      a page added with Pages, in the monitor's frame
//	GET /pages/{page}/static/{file}         the files of its Assets
//	GET /api/pages/{page}/...               its API
//
// Errors are JSON objects {"error": "..."} with a 4xx or 5xx status.
type Monitor struct {
	procs       []Processor
	views       []*view
	emitters    []Emitter
	gatherer    prometheus.Gatherer
	token       string
	allowRemote bool
	pages       []Page
	links       []pageLink // the pages, as the header links to them
	setupErrs   []error    // why pages could not be added, for Listen
	mux         *http.ServeMux

	mu      sync.Mutex
	samples [][]sample // per processor, oldest first
	sampled time.Time
}

// sample is a group's consumed total at a time.
type sample struct {
	at       time.Time
	consumed int64
}

// New returns a monitor of what opts register.
func New(opts ...Opt) *Monitor {
	m := &Monitor{mux: http.NewServeMux()}
	for _, o := range opts {
		o(m)
	}
	m.samples = make([][]sample, len(m.procs))
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	m.mux.Handle("/{$}", files)
	m.mux.Handle("/static/", http.StripPrefix("/static", noListing(files)))
	m.mux.HandleFunc("/api/state", m.serveState)
	m.mux.HandleFunc("/api/views/{view}/rows", m.serveRows)
	m.addPages()
	if m.gatherer != nil {
		m.mux.Handle("/metrics", promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{}))
	}
	m.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such page: %s", r.URL.Path))
	})
	return m
}

// noListing answers 404 for directories instead of listing them.
func noListing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			writeError(w, http.StatusNotFound, "no such file")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler.
func (m *Monitor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: the monitor only reads", r.Method))
		return
	}
	if m.token != "" && !m.authorized(w, r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice monitor"`)
		writeError(w, http.StatusUnauthorized, "a token is required: send Authorization: Bearer <token>, or open the page with ?token=<token>")
		return
	}
	if view, key, ok := keyPath(r.URL.Path); ok {
		// Not through the mux, which cleans paths: it would redirect the
		// key a//b to a/b, and a/../b to b.
		m.serveKey(w, view, key)
		return
	}
	m.mux.ServeHTTP(w, r)
}

// keyPath splits /api/views/{view}/keys/{key} into the view and the key,
// taken as it is. A view is named after its topic, whose name holds no
// "/".
func keyPath(path string) (view, key string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/api/views/")
	if !ok {
		return "", "", false
	}
	view, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	key, ok = strings.CutPrefix(rest, "keys/")
	return view, key, ok
}

// authorized reports whether r carries the token. The page and the pages
// added with Pages accept it as a query parameter and set it as a cookie
// for the requests they make.
func (m *Monitor) authorized(w http.ResponseWriter, r *http.Request) bool {
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && m.tokenIs(bearer) {
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && m.tokenIs(c.Value) {
		return true
	}
	if (r.URL.Path == "/" || m.isFramePath(r.URL.Path)) && m.tokenIs(r.URL.Query().Get("token")) {
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: m.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return true
	}
	return false
}

func (m *Monitor) tokenIs(s string) bool {
	return s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(m.token)) == 1
}

// Listen listens on addr (DefaultAddr if empty). It refuses an address that
// is not loopback unless a Token is set or AllowRemote is given, and fails
// when a page given with Pages cannot be served.
func (m *Monitor) Listen(addr string) (net.Listener, error) {
	if err := errors.Join(m.setupErrs...); err != nil {
		return nil, err
	}
	if addr == "" {
		addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("monitor: address %q: %w", addr, err)
	}
	if !isLoopback(host) && m.token == "" && !m.allowRemote {
		return nil, fmt.Errorf("monitor: refusing to listen on %s without a token: it is not a loopback address; set a token (web.Token) or allow it (web.AllowRemote)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return ln, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Serve serves the monitor on ln until ctx is done, sampling the groups'
// records per second meanwhile.
func (m *Monitor) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	defer close(served)
	go func() {
		tick := time.NewTicker(sampleInterval)
		defer tick.Stop()
		for {
			select {
			case <-served:
				return
			case <-tick.C:
				m.sample()
			}
		}
	}()
	if err := ServeUntil(ctx, srv, ln, 5*time.Second); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}

// sample records each group's consumed total, at most once per interval.
func (m *Monitor) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if now.Sub(m.sampled) < sampleInterval*9/10 {
		return
	}
	m.sampled = now
	for i, p := range m.procs {
		s := append(m.samples[i], sample{at: now, consumed: p.Stats().Consumed})
		if len(s) > history {
			s = s[len(s)-history:]
		}
		m.samples[i] = s
	}
}

// rates returns processor i's records per second between samples.
func (m *Monitor) rates(i int) []ratePoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.samples[i]
	var out []ratePoint
	for j := 1; j < len(s); j++ {
		d := s[j].at.Sub(s[j-1].at).Seconds()
		if d <= 0 {
			continue
		}
		out = append(out, ratePoint{At: s[j].at.UnixMilli(), PerSecond: max(float64(s[j].consumed-s[j-1].consumed), 0) / d})
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := jsonvalue.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode json: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// view returns the view named name, or writes a 404.
func (m *Monitor) view(w http.ResponseWriter, name string) *view {
	for _, v := range m.views {
		if v.Topic() == name {
			return v
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no view %q", name))
	return nil
}

func (m *Monitor) serveKey(w http.ResponseWriter, view, key string) {
	v := m.view(w, view)
	if v == nil {
		return
	}
	if key == "" {
		writeError(w, http.StatusBadRequest, "give a key: /api/views/{view}/keys/{key}")
		return
	}
	val, err := v.GetJSON(key)
	if err != nil {
		writeViewError(w, v, key, err)
		return
	}
	writeJSON(w, http.StatusOK, keyValue{Key: key, Value: val})
}

func writeViewError(w http.ResponseWriter, v *view, key string, err error) {
	switch state := v.State(); {
	case errors.Is(err, sluice.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found in %s", key, v.Topic()))
	case state != sluice.ViewRunning:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("view %s is %s, not running", v.Topic(), state))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

type rowsResponse struct {
	Rows []keyValue `json:"rows"`
	More bool       `json:"more"`
}

func (m *Monitor) serveRows(w http.ResponseWriter, r *http.Request) {
	v := m.view(w, r.PathValue("view"))
	if v == nil {
		return
	}
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	limit := defaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number from 1 to %d", s, maxLimit))
			return
		}
		limit = n
	}
	if from != "" && to != "" && from > to {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad range: from %q is after to %q", from, to))
		return
	}
	rows, more, err := v.RangeJSON(from, to, limit)
	if err != nil {
		writeViewError(w, v, from, err)
		return
	}
	if rows == nil {
		rows = []keyValue{}
	}
	writeJSON(w, http.StatusOK, rowsResponse{Rows: rows, More: more})
}
