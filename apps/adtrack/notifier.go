package adtrack

// The postbacks group turns conversions and in-app events into postback
// requests. Its table holds the network users that store_user postbacks
// store, keyed by UserKey: conversions arrive keyed by their user, and an
// event for a user_required postback travels as a loopback to the user's
// key, so that storing a user and looking it up happen in the task that
// owns the user's row.

import (
	"fmt"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// PostbacksGroup is the name of the postbacks group; its table of network
// users is PostbacksGroup + "-table".
const PostbacksGroup = "adtrack-postbacks"

// userDataKeys are the click parameters a network user keeps, which
// templates see as .User.
var userDataKeys = []string{"partner_data", "click", "ad", "adgroup", "campaign", "reqparams"}

// NetworkUser is a row of the postbacks group's table: the network user of
// a device for an advertiser, stored by a store_user postback on a
// conversion.
type NetworkUser struct {
	// Network is the ad network the user came through.
	Network string `json:"network"`
	// Advertiser is the advertiser (the click's user_id).
	Advertiser string `json:"advertiser"`
	// DeviceID is the device id, as the install sent it.
	DeviceID string `json:"device_id"`
	// Data is the click's data: partner_data, click, ad, adgroup, campaign
	// and reqparams, the ones it had.
	Data map[string]string `json:"data"`
	// Stored is the ts of the install that stored it.
	Stored time.Time `json:"stored"`
}

// userHop is a loopback record of the postbacks group, sent to a user's
// key: a conversion to store the user of, or an event for one
// user_required postback.
type userHop struct {
	Conversion *wireConversion `json:"conversion,omitempty"`
	Event      string          `json:"event,omitempty"`
	Postback   string          `json:"postback,omitempty"`
}

// Notifier is the postbacks group's definition and the handles of its
// outputs.
type Notifier struct {
	// Group is the group, for NewProcessor and sluicetest.
	Group *sluice.Group[NetworkUser]
	// Requests is the output of postback requests, keyed by network.
	Requests *sluice.OutputTopic[Request]
	// Results is the output of the error results of postbacks whose
	// request could not be rendered, keyed by postback id.
	Results *sluice.OutputTopic[Event]

	hops      *sluice.LoopTopic[userHop]
	postbacks *Postbacks
}

// DefinePostbacks defines the postbacks group for the configured
// postbacks: it reads ConversionsTopic (the "mac" postbacks) and InAppTopic
// (the postbacks of every other event type) and writes RequestsTopic, and
// ResultsTopic for a postback whose condition or templates fail on an
// event.
func DefinePostbacks(ps *Postbacks) *Notifier {
	if ps == nil {
		ps = &Postbacks{}
	}
	g := sluice.DefineGroup[NetworkUser](PostbacksGroup)
	n := &Notifier{Group: g, postbacks: ps}
	sluice.Persist(g, codec.JSON[NetworkUser]())
	sluice.Input(g, ConversionsTopic, ConversionCodec(), n.conversion)
	sluice.Input(g, InAppTopic, EventCodec(), n.inApp)
	n.hops = sluice.Loop(g, codec.JSON[userHop](), n.hop)
	n.Requests = sluice.Output(g, RequestsTopic, RequestCodec())
	n.Results = sluice.Output(g, ResultsTopic, EventCodec())
	return n
}

// conversion fires the conversion's postbacks, storing its network user
// first where a postback says so.
func (n *Notifier) conversion(ctx *sluice.Context[NetworkUser], c Conversion) error {
	key := ConversionUserKey(c)
	if key != "" && ctx.Key() != key {
		// Written by another producer, under another key: the user's row
		// is another task's.
		w, err := c.wire()
		if err != nil {
			return err
		}
		return n.hops.Loopback(ctx, key, userHop{Conversion: &w})
	}
	ps := n.postbacks.Select(Query{
		Event: ConversionType, Platform: c.Install.Meta.Platform,
		Network: c.Click.Param("network"), Advertiser: c.Click.Param("user_id"),
	})
	var user *NetworkUser
	if key != "" {
		if u, ok := ctx.Value(); ok {
			user = &u
		}
		for _, p := range ps {
			if p.StoreUser {
				u := newNetworkUser(c)
				ctx.SetValue(u)
				user = &u
				break
			}
		}
	}
	src := Source{Event: c.Install, Click: c.Click.Params}
	if user != nil {
		src.User = user.Data
	}
	for _, p := range ps {
		if p.UserRequired && user == nil {
			continue
		}
		if err := n.fire(ctx, p, src); err != nil {
			return err
		}
	}
	return nil
}

func newNetworkUser(c Conversion) NetworkUser {
	id := c.Install.Param("adid")
	if BlankDeviceID(id) {
		id = c.Click.Param("adid")
	}
	data := map[string]string{}
	for _, k := range userDataKeys {
		if vs, ok := c.Click.Params[k]; ok && len(vs) > 0 {
			data[k] = vs[0]
		}
	}
	return NetworkUser{
		Network: c.Click.Param("network"), Advertiser: c.Click.Param("user_id"),
		DeviceID: id, Data: data, Stored: c.Install.Meta.TS,
	}
}

// inApp fires the postbacks of an in-app event; one that requires a
// network user is sent on to the user's row.
func (n *Notifier) inApp(ctx *sluice.Context[NetworkUser], ev Event) error {
	for _, p := range n.postbacks.Select(Query{Event: ev.Type(), Platform: ev.Meta.Platform}) {
		if !p.UserRequired {
			if err := n.fire(ctx, p, Source{Event: ev}); err != nil {
				return err
			}
			continue
		}
		key := UserKey(p.Network, p.UserID, ev.Param("adid"))
		if key == "" {
			// No device id, no network user to require.
			continue
		}
		if ctx.Key() == key {
			if err := n.withUser(ctx, p, ev); err != nil {
				return err
			}
			continue
		}
		if err := n.hops.Loopback(ctx, key, userHop{Event: ev.String(), Postback: p.ID}); err != nil {
			return err
		}
	}
	return nil
}

func (n *Notifier) hop(ctx *sluice.Context[NetworkUser], h userHop) error {
	if h.Conversion != nil {
		c, err := h.Conversion.conversion()
		if err != nil {
			return fmt.Errorf("user hop: conversion: %w", err)
		}
		return n.conversion(ctx, c)
	}
	ev, err := ParseEvent([]byte(h.Event))
	if err != nil {
		return fmt.Errorf("user hop: %w", err)
	}
	p := n.postbacks.Get(h.Postback)
	if p == nil {
		ctx.Logger().Warn("postback no longer configured, event dropped", "postback", h.Postback, "event", ev.Type())
		return nil
	}
	return n.withUser(ctx, p, ev)
}

// withUser fires a user_required postback if the key being processed has
// a network user.
func (n *Notifier) withUser(ctx *sluice.Context[NetworkUser], p *Postback, ev Event) error {
	u, ok := ctx.Value()
	if !ok {
		ctx.Logger().Debug("no network user stored, postback not sent", "postback", p.ID, "user", ctx.Key())
		return nil
	}
	return n.fire(ctx, p, Source{Event: ev, User: u.Data})
}

// fire renders postback p for src into a request, or into an error result
// when its condition or a template fails on src.
func (n *Notifier) fire(ctx *sluice.Context[NetworkUser], p *Postback, src Source) error {
	ok, err := p.Applies(src)
	if err == nil && !ok {
		return nil
	}
	var req Request
	if err == nil {
		req, err = p.Render(src)
	}
	if err != nil {
		at := ctx.Timestamp()
		if at.IsZero() {
			at = src.Event.Meta.TS
		}
		ctx.Logger().Warn("postback not rendered", "postback", p.ID, "err", err)
		return n.Results.Emit(ctx, p.ID, ErrorResult(p, err, at).Event())
	}
	return n.Requests.Emit(ctx, req.Network, req)
}
