package adtrack

// The attribution group keeps the click store and attributes installs to
// its clicks, in one table keyed by lookup key, so that the task that owns
// a key's clicks is the only one that consumes them: a match and its
// consumption are one row change, atomic with the record that caused it.
//
// An install's candidate keys lie on different partitions. Its lookup
// travels from key to key as loopback records (hops), each handled by the
// task that owns the key's row, and never reads another partition's store.
// Before it starts, the install passes through the row of its own identity
// ("install:<id>"), which remembers it, so that a second delivery of the
// same install does not look for a second click; a redo of the same record
// after a crash (at least once) walks again, and the claim each consumed
// click leaves in its row answers it with the same click. One window is
// left at least once: a new click that reaches one of the install's
// earlier keys between the first walk and the redo can be matched by the
// redo as well. Exactly once there is no redo.
//
// Rows stay small: an event-time timer per key drops the clicks that can no
// longer match, and the claims and install identities past their
// retention.

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// AttributionGroup is the name of the attribution group; its table is
// AttributionGroup + "-table".
const AttributionGroup = "adtrack-attribution"

// The attribution window: a click matches an install when the click's
// window end lies in [install.ts − WindowBefore, install.ts + WindowAfter].
const (
	// WindowBefore is how long before an install a click's window may end.
	WindowBefore = 5 * time.Minute
	// WindowAfter is how long after an install a click's window may end.
	WindowAfter = 7 * 24 * time.Hour
)

// Defaults of AttributionConfig.
const (
	// DefaultExpiryGrace is AttributionConfig.ExpiryGrace's default.
	DefaultExpiryGrace = time.Hour
	// DefaultRemember is AttributionConfig.Remember's default.
	DefaultRemember = 7 * 24 * time.Hour
)

// expireTimer is the name of the timer that cleans a key's row.
const expireTimer = "expire"

// AttributionConfig configures the attribution group.
type AttributionConfig struct {
	// ExpiryGrace is how long, by stream time (the largest record
	// timestamp of the partition), a click is kept after the last install
	// time it could match (its window end + WindowBefore), for installs
	// that reach Kafka late. Default DefaultExpiryGrace, one hour.
	ExpiryGrace time.Duration
	// Remember is how long, by stream time after an install's ts, the
	// install's identity and the click it consumed are remembered, so that
	// a repeated delivery of the install neither consumes another click
	// nor loses its conversion. The consumed click is remembered at least
	// as long as it would have been kept unconsumed, so that a repeated
	// delivery of the click is not stored for another install. Default
	// DefaultRemember, seven days.
	Remember time.Duration
}

// ClickRow is a row of the attribution group's table. Under a lookup key it
// holds the clicks not yet attributed and the claims of those that were;
// under "install:<id>" it remembers an install.
type ClickRow struct {
	// Clicks are the stored clicks not yet attributed, in arrival order.
	Clicks []StoredClick `json:"clicks,omitempty"`
	// Claims are the clicks of this key that attributed an install.
	Claims []Claim `json:"claims,omitempty"`
	// Install remembers an install that started its lookup.
	Install *SeenInstall `json:"install,omitempty"`
}

// StoredClick is a click in the store.
type StoredClick struct {
	// ID is the click's identity (EventID).
	ID string `json:"id"`
	// Till is the click's window end, attr_window_till.
	Till time.Time `json:"till"`
	// Wire is the click in the tracker format.
	Wire string `json:"wire"`
}

// Claim is a click consumed by an install.
type Claim struct {
	// Install is the install's identity (EventID).
	Install string `json:"install"`
	// Click is the click it consumed.
	Click StoredClick `json:"click"`
	// Forget is when, by stream time, the claim is dropped: Remember after
	// the install's ts, and not before the click would have been dropped.
	Forget time.Time `json:"forget"`
}

// SeenInstall is an install whose lookup started.
type SeenInstall struct {
	// Source is the position of the record that started it,
	// "<topic>/<partition>@<offset>": a redo of that record walks again.
	Source string `json:"source"`
	// Forget is when, by stream time, it is dropped.
	Forget time.Time `json:"forget"`
}

// hop is a loopback record of the attribution group.
type hop struct {
	// Kind is hopClick, hopInstall or hopLookup.
	Kind string `json:"kind"`
	// Event is the click or the install, in the tracker format.
	Event string `json:"event"`
	// Source is the position of the install record (hopInstall).
	Source string `json:"source,omitempty"`
	// Keys are the install's candidate keys and Next the index of the key
	// the hop is sent to (hopLookup).
	Keys []string `json:"keys,omitempty"`
	Next int      `json:"next,omitempty"`
}

const (
	hopClick   = "click"
	hopInstall = "install"
	hopLookup  = "lookup"
)

// Attribution is the attribution group's definition and the handles of its
// outputs.
type Attribution struct {
	// Group is the group, for NewProcessor and sluicetest.
	Group *sluice.Group[ClickRow]
	// Conversions is the output of attributed installs.
	Conversions *sluice.OutputTopic[Conversion]
	// Unattributed is the output of installs no click matched.
	Unattributed *sluice.OutputTopic[Event]

	hops *sluice.LoopTopic[hop]
	cfg  AttributionConfig
}

// DefineAttribution defines the attribution group: it reads ClicksTopic and
// InAppTopic (installs; other in-app events are not its business) and
// writes ConversionsTopic and UnattributedTopic.
func DefineAttribution(cfg AttributionConfig) *Attribution {
	if cfg.ExpiryGrace <= 0 {
		cfg.ExpiryGrace = DefaultExpiryGrace
	}
	if cfg.Remember <= 0 {
		cfg.Remember = DefaultRemember
	}
	g := sluice.DefineGroup[ClickRow](AttributionGroup)
	a := &Attribution{Group: g, cfg: cfg}
	sluice.Persist(g, codec.JSON[ClickRow]())
	sluice.Input(g, ClicksTopic, EventCodec(), a.click)
	sluice.Input(g, InAppTopic, EventCodec(), a.inApp)
	a.hops = sluice.Loop(g, codec.JSON[hop](), a.hop)
	sluice.OnTimer(g, a.expire)
	a.Conversions = sluice.Output(g, ConversionsTopic, ConversionCodec())
	a.Unattributed = sluice.Output(g, UnattributedTopic, EventCodec())
	return a
}

// click sends a click to the row of its lookup key.
func (a *Attribution) click(ctx *sluice.Context[ClickRow], click Event) error {
	if click.Type() != "click" {
		return fmt.Errorf("event type %q on %s, want click", clip(click.Type()), ClicksTopic)
	}
	key := click.Param("lookup_key")
	if key == "" {
		key = ClickLookupKey(click)
	}
	if key == "" {
		return fmt.Errorf("click has no lookup_key, device id or address to be found under")
	}
	if _, err := windowEnd(click); err != nil {
		return err
	}
	if ctx.Key() == key {
		return a.store(ctx, click)
	}
	return a.hops.Loopback(ctx, key, hop{Kind: hopClick, Event: click.String()})
}

// windowEnd is a click's attr_window_till.
func windowEnd(click Event) (time.Time, error) {
	s := click.Param("attr_window_till")
	if s == "" {
		return time.Time{}, fmt.Errorf("click has no attr_window_till")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("click attr_window_till: %w", err)
	}
	return t.UTC(), nil
}

// store adds a click to the row of the key being processed, unless it is
// there already (a repeated delivery) or can no longer match.
func (a *Attribution) store(ctx *sluice.Context[ClickRow], click Event) error {
	till, err := windowEnd(click)
	if err != nil {
		return err
	}
	if !a.clickDeadline(till).After(ctx.StreamTime()) {
		ctx.Logger().Debug("click expired before it was stored", "key", ctx.Key(), "till", till)
		return nil
	}
	id := EventID(click)
	row, _ := ctx.Value()
	if slices.ContainsFunc(row.Clicks, func(c StoredClick) bool { return c.ID == id }) ||
		slices.ContainsFunc(row.Claims, func(c Claim) bool { return c.Click.ID == id }) {
		return nil
	}
	row.Clicks = append(row.Clicks, StoredClick{ID: id, Till: till, Wire: click.String()})
	a.save(ctx, row)
	return nil
}

// inApp starts the lookup of an install at the row of its identity.
func (a *Attribution) inApp(ctx *sluice.Context[ClickRow], ev Event) error {
	if ev.Type() != "ist" {
		return nil
	}
	source := ctx.Topic() + "/" + strconv.Itoa(int(ctx.Partition())) + "@" + strconv.FormatInt(ctx.Offset(), 10)
	home := "install:" + EventID(ev)
	if ctx.Key() == home {
		return a.remember(ctx, ev, source)
	}
	return a.hops.Loopback(ctx, home, hop{Kind: hopInstall, Event: ev.String(), Source: source})
}

func (a *Attribution) hop(ctx *sluice.Context[ClickRow], h hop) error {
	ev, err := ParseEvent([]byte(h.Event))
	if err != nil {
		return fmt.Errorf("%s hop: %w", h.Kind, err)
	}
	switch h.Kind {
	case hopClick:
		return a.store(ctx, ev)
	case hopInstall:
		return a.remember(ctx, ev, h.Source)
	case hopLookup:
		if h.Next < 0 || h.Next >= len(h.Keys) {
			return fmt.Errorf("lookup hop: key %d of %d", h.Next, len(h.Keys))
		}
		return a.lookup(ctx, ev, h.Keys, h.Next)
	}
	return fmt.Errorf("hop of unknown kind %q", clip(h.Kind))
}

// remember records an install at the row of its identity and starts its
// lookup, unless another delivery of it started one already.
func (a *Attribution) remember(ctx *sluice.Context[ClickRow], install Event, source string) error {
	row, _ := ctx.Value()
	if row.Install != nil && row.Install.Source != source {
		ctx.Logger().Debug("install delivered again, not attributed again", "install", ctx.Key(), "first", row.Install.Source, "again", source)
		return nil
	}
	if row.Install == nil {
		row.Install = &SeenInstall{Source: source, Forget: install.Meta.TS.Add(a.cfg.Remember)}
		a.save(ctx, row)
	}
	keys := InstallLookupKeys(install)
	if len(keys) == 0 {
		return a.unmatched(ctx, install, nil)
	}
	return a.hops.Loopback(ctx, keys[0], hop{Kind: hopLookup, Event: install.String(), Keys: keys})
}

// lookup looks for the install's click under keys[next], the key being
// processed, and sends the lookup on to the next key when there is none.
func (a *Attribution) lookup(ctx *sluice.Context[ClickRow], install Event, keys []string, next int) error {
	id := EventID(install)
	row, _ := ctx.Value()
	if i := slices.IndexFunc(row.Claims, func(c Claim) bool { return c.Install == id }); i >= 0 {
		// A redo: the click was consumed by this install before, and its
		// conversion is sent again, the same as the first time.
		return a.convert(ctx, row.Claims[i].Click, install)
	}
	best := -1
	from, to := install.Meta.TS.Add(-WindowBefore), install.Meta.TS.Add(WindowAfter)
	for i, c := range row.Clicks {
		if c.Till.Before(from) || c.Till.After(to) {
			continue
		}
		if best < 0 || c.Till.Before(row.Clicks[best].Till) {
			best = i
		}
	}
	if best < 0 {
		if next+1 < len(keys) {
			return a.hops.Loopback(ctx, keys[next+1], hop{Kind: hopLookup, Event: install.String(), Keys: keys, Next: next + 1})
		}
		return a.unmatched(ctx, install, keys)
	}
	click := row.Clicks[best]
	row.Clicks = slices.Delete(row.Clicks, best, best+1)
	// The claim outlives the click it replaces: until the click's own
	// deadline, a delivery of the click again finds it and is not stored
	// for another install to consume.
	forget := install.Meta.TS.Add(a.cfg.Remember)
	if d := a.clickDeadline(click.Till); d.After(forget) {
		forget = d
	}
	row.Claims = append(row.Claims, Claim{Install: id, Click: click, Forget: forget})
	a.save(ctx, row)
	return a.convert(ctx, click, install)
}

func (a *Attribution) convert(ctx *sluice.Context[ClickRow], stored StoredClick, install Event) error {
	click, err := ParseEvent([]byte(stored.Wire))
	if err != nil {
		return fmt.Errorf("stored click %s: %w", stored.ID, err)
	}
	c := Conversion{Click: click, Install: install, LookupKey: ctx.Key()}
	key := ConversionUserKey(c)
	if key == "" {
		// No device id, no network user: spread by the install.
		key = "mac:" + EventID(install)
	}
	return a.Conversions.Emit(ctx, key, c)
}

func (a *Attribution) unmatched(ctx *sluice.Context[ClickRow], install Event, keys []string) error {
	id := EventID(install)
	ctx.Logger().Info("install not attributed: no click in its window under any of its keys",
		"install", id, "keys", keys, "platform", install.Meta.Platform, "ts", install.Meta.TS)
	return a.Unattributed.Emit(ctx, id, install)
}

// clickDeadline is when, by stream time, a click whose window ends at till
// is dropped.
func (a *Attribution) clickDeadline(till time.Time) time.Time {
	return till.Add(WindowBefore + a.cfg.ExpiryGrace)
}

// save writes the row and sets its timer for the first time something in
// it is due to be dropped.
func (a *Attribution) save(ctx *sluice.Context[ClickRow], row ClickRow) {
	ctx.SetValue(row)
	if next, ok := a.nextDeadline(row); ok {
		ctx.SetTimer(expireTimer, next)
	}
}

func (a *Attribution) nextDeadline(row ClickRow) (time.Time, bool) {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, c := range row.Clicks {
		earlier(a.clickDeadline(c.Till))
	}
	for _, c := range row.Claims {
		earlier(c.Forget)
	}
	if row.Install != nil {
		earlier(row.Install.Forget)
	}
	return next, !next.IsZero()
}

// expire drops what is due from the key's row, and the row when nothing is
// left.
func (a *Attribution) expire(ctx *sluice.Context[ClickRow], t sluice.Timer) error {
	row, ok := ctx.Value()
	if !ok {
		return nil
	}
	now := t.Time
	if st := ctx.StreamTime(); st.After(now) {
		now = st
	}
	row.Clicks = slices.DeleteFunc(row.Clicks, func(c StoredClick) bool { return !a.clickDeadline(c.Till).After(now) })
	row.Claims = slices.DeleteFunc(row.Claims, func(c Claim) bool { return !c.Forget.After(now) })
	if row.Install != nil && !row.Install.Forget.After(now) {
		row.Install = nil
	}
	if len(row.Clicks) == 0 && len(row.Claims) == 0 && row.Install == nil {
		ctx.Delete()
		return nil
	}
	a.save(ctx, row)
	return nil
}
