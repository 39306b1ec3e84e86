package logdrain

// The Routes page of the web monitor: the busiest and the slowest routes,
// and a chart of one route's minutes, drawn in the browser from the routes
// view's own JSON.

import (
	"embed"
	"io/fs"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/web"
)

// RoutesPage is the name of the Routes page: the monitor serves it at
// /pages/routes/ and the routes view's Handler under /api/pages/routes/.
const RoutesPage = "routes"

//go:embed monitor
var monitorAssets embed.FS

// MonitorPage returns the Routes page of the web monitor: the busiest
// routes (the order of GET /routes) with their requests by status class,
// the slowest by average service time with the percentiles of their last
// minute, and a chart of a route's requests per minute and p95 service
// time, the busiest's until another row is chosen. Its API is the view's
// Handler, so it reads GET /routes and GET /routes/{path} as the routes
// view serves them.
func (v *RoutesView) MonitorPage() web.Page {
	// Sub fails only on an invalid name; the nil Assets it returns then
	// would make the monitor's Listen say so.
	assets, _ := fs.Sub(monitorAssets, "monitor")
	return web.Page{Name: RoutesPage, Title: "Routes", Assets: assets, API: v.Handler()}
}

// listenMonitor makes the monitor of Run, with the route metrics group,
// the view's table, the metrics and the Routes page, and listens on addr.
func listenMonitor(addr string, proc *sluice.Processor[RouteStats], v *RoutesView, reg prometheus.Gatherer) (*web.Monitor, net.Listener, error) {
	m := web.New(web.Processors(proc), web.Views(v.table), web.Metrics(reg), web.Pages(v.MonitorPage()))
	ln, err := m.Listen(addr)
	if err != nil {
		return nil, nil, err
	}
	return m, ln, nil
}
