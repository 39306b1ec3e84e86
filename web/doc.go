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
// The monitor only reads. Listen refuses addresses other than loopback
// unless a Token is required (or AllowRemote is given); with a Token, every
// request needs it, and requests without it get status 401.
package web
