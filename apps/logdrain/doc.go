// Package logdrain is a Logplex log drain: Heroku POSTs an application's
// logs to it in octet-counting framing, one RFC 5424 message per frame, and
// the drain puts router lines on Kafka for the groups that aggregate
// per-route metrics and replay the traffic.
//
// This file set holds the parsers of that untrusted input, each of which
// returns an error naming what is wrong and never panics:
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
