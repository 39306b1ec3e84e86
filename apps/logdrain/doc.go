// Package logdrain is a Logplex log drain: Heroku POSTs an application's
// logs to it in octet-counting framing, one RFC 5424 message per frame, and
// the drain puts router lines on Kafka for the group that aggregates
// per-route metrics.
//
// `sluice run logdrain` runs it; a program runs it on any Kafka cluster with
//
//	err := logdrain.Run(ctx, logdrain.Config{
//		Brokers: []string{"127.0.0.1:9092"},
//		Drain:   logdrain.DrainConfig{BasicAuth: "drain:s3cret"},
//	})
//
// which serves these parts:
//
//   - the Drain (NewDrain, Handler, Serve): POST /logs and /process answer
//     204 only once Kafka acknowledged every record of the body, 503 with
//     Retry-After when it did not, 401, 413 or 400 for bodies it refuses.
//     Router lines go to RouterTopic as Record JSON keyed by path, other
//     lines to LogsTopic, and each frame that does not parse alone to
//     RejectsTopic with its reason, while the good frames of its body go
//     through;
//   - the route metrics group (DefineRoutesGroup), exactly once: per path
//     the sums and counts of service and connect times, a count per
//     status, and per-minute windows of service times as DDSketches;
//   - the RoutesView, serving GET /routes and GET /routes/{path} as Route
//     JSON;
//   - with Config.MonitorAddr, the web monitor of the group, with the Routes
//     page (RoutesView.MonitorPage): the busiest routes with their requests
//     by status class, the slowest by average service time with the
//     percentiles of their last minute, and a chart of a route's requests
//     per minute and p95, drawn from the view's own GET /routes and
//     GET /routes/{path};
//   - with Config.RedisURL, a mirror of the route metrics to Redis in the
//     original key scheme (RedisRoutesKey, RouteDigest), each path written
//     whole by one Lua script that refuses an older state.
//
// The Replayer (NewReplayer, `sluice run replay`) reads RouterTopic and
// sends each line's method and path again to a target, paced by the lines'
// times and a speed factor, within a rate limit and a bound on the
// requests in flight, and counts the answers by status class and latency
// (ReplayStats). RunDemo (`sluice demo logdrain`) runs everything on
// generated Logplex traffic.
//
// A test runs the group alone through sluicetest:
//
//	g, err := logdrain.DefineRoutesGroup(logdrain.RoutesConfig{})
//	…
//	tt, err := sluicetest.New(g)
//
// The parsers of the untrusted input each return an error naming what is
// wrong and never panic:
//
//   - SplitFrames splits a body into frames and marks the spans that are not
//     frames, resuming at the next plausible frame so that one broken count
//     does not lose the good frames after it;
//   - ParseMessage reads one RFC 5424 message, with structured data, with
//     its NILVALUE, or without it as Logplex sends it;
//   - ParseRouterLine reads a Heroku router line's key=value fields by name
//     into a RouterLine, keeping the keys it does not know.
//
// For example:
//
//	for _, f := range logdrain.SplitFrames(body) {
//		if f.Err != nil {
//			reject(f.Msg, f.Err) // bad framing: f.Msg is the raw span
//			continue
//		}
//		m, err := logdrain.ParseMessage(f.Msg)
//		if err != nil {
//			reject(f.Msg, err)
//			continue
//		}
//		if logdrain.IsRouter(&m) {
//			r, err := logdrain.ParseRouterLine(m.Msg)
//			…
//		}
//	}
package logdrain
