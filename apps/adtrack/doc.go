// Package adtrack is mobile ad tracking: users click campaign links, an app
// is later installed and used on the device, and attribution matches each
// install to the click that caused it and tells the ad network through a
// postback URL.
//
// The tracker's events travel as records of the form "<path> <meta>
// <params>" (see ParseEvent and EventCodec). Postbacks are configured in a
// YAML file (see ParsePostbacks): each is a URL template, with an optional
// body and headers, selected by network, event type, platform and a
// condition; every value substituted into a URL is escaped, so an event
// cannot add or change a parameter. A Sender performs the rendered
// requests with timeouts, bounded retries and a request id that stays the
// same on every retry, and reports each outcome as a Result, which becomes a
// "pob" event.
//
// # Groups and topics
//
// Run runs four groups (topics in quotes):
//
//	"clicks", "inapp" ─▶ adtrack-attribution ─▶ "conversions", "unattributed"
//	"conversions", "inapp" ─▶ adtrack-postbacks ─▶ "postback-requests" (and error results)
//	"postback-requests" ─▶ adtrack-urlworker ─▶ "postback-results"
//	"clicks", "conversions", "unattributed", "postback-results" ─▶ adtrack-stats ─▶ StatsHandler
//
// What each does:
//
//   - DefineAttribution: the click store and the attribution, one table
//     keyed by lookup key (ClickRow). An install's lookup travels from key
//     to key as loopback records; the earliest-ending click in the window
//     under the first key that has one is consumed and a Conversion
//     ("mac") is written, keyed by its network user (UserKey). A click
//     attributes at most one install, whatever the deliveries.
//   - DefinePostbacks: the postbacks of conversions and of in-app events,
//     rendered into Requests keyed by network; its table holds the network
//     users (NetworkUser) that store_user postbacks store and
//     user_required postbacks need.
//   - DefineURLWorker: performs each request and writes its Result.
//   - DefineStats: counters per campaign link and per postback (Counters),
//     served as JSON by StatsHandler over a view of its table.
//
// Run runs these groups exactly once (sluice.ExactlyOnce), unless
// Config.AtLeastOnce says otherwise: every record is attributed, rendered
// and counted once, so a crash does not make a postback request twice. At
// least once, a record redone after a crash may write its conversion or
// requests again, the same as the first time, and a request carries the
// same id; no click is consumed twice.
package adtrack
