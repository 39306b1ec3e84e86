// Package web is the monitor of a sluice process: one page, served by the
// process itself, that shows its groups (each partition's state, offsets,
// lag, records per second, table size and last error), its views, with a
// browser that looks up a key or lists a range of keys, and its emitters.
// The page refreshes itself every second from a JSON API; its HTML, CSS and
// JavaScript are embedded in the binary, so it needs nothing from the
// internet.
//
//	m := web.New(
//		web.Processors(proc),
//		web.Views(view),
//		web.Emitters(em),
//		web.Metrics(reg), // also serve /metrics
//	)
//	ln, err := m.Listen("")      // 127.0.0.1:9096
//	err = m.Serve(ctx, ln)
//
// An application adds pages of its own with Pages: each a Page with an
// HTML fragment, its scripts and styles in an fs.FS (usually embedded), and
// an http.Handler for its JSON API. The monitor serves the fragment at
// /pages/{name}/ inside its frame, with a link to it from every page, its
// files at /pages/{name}/static/ and its API at /api/pages/{name}/, behind
// the same token and read-only checks as its own:
//
//	//go:embed monitor
//	var panel embed.FS
//
//	assets, _ := fs.Sub(panel, "monitor") // body.html, routes.js
//	m := web.New(web.Processors(proc), web.Pages(web.Page{
//		Name: "routes", Title: "Routes", Assets: assets, API: routesAPI,
//	}))
//
// A page's script uses the global sluice that /static/monitor.js defines
// (the API's JSON, a refresh loop, element builders, small SVG charts);
// nothing loads from another origin. The log drain's route metrics
// (apps/logdrain) and the export's sink health (apps/export) are pages of
// this kind.
//
// The monitor only reads. Listen refuses addresses other than loopback
// unless a Token is required (or AllowRemote is given); with a Token, every
// request needs it, and requests without it get status 401.
package web
