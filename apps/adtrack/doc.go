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
package adtrack
