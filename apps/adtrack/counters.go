package adtrack

// The stats group counts clicks and conversions per campaign link and
// postback results per postback, in rows of counters keyed
// "clickstats:cl:<campaign_link_id>" and "pbstats:pb:<postback_id>". Its
// inputs are keyed otherwise, so each record's counts travel as a loopback
// to the row they belong to. At least once a redelivered record is counted
// again; exactly once it is counted once.

import (
	"strconv"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// StatsGroup is the name of the stats group; its table is StatsGroup +
// "-table", which a view serves (see StatsHandler).
const StatsGroup = "adtrack-stats"

// The counter names, and the prefixes of those named after a value.
const (
	// CountCounter counts every click of a campaign link, and every result
	// of a postback.
	CountCounter = "count"
	// BotClickCounter counts the clicks sent by a bot (bot_name set).
	BotClickCounter = "botclick"
	// WithAdidCounter counts the clicks that carry a device id (idfa_comb).
	WithAdidCounter = "with_adid"
	// ConversionCounter counts the installs attributed to a campaign link.
	ConversionCounter = "conversion"
	// MatchedCounter counts attributed installs, in the AttributionStatsKey
	// row.
	MatchedCounter = "matched"
	// UnmatchedCounter counts the installs no click matched, in the
	// AttributionStatsKey row.
	UnmatchedCounter = "unmatched"
)

// AttributionStatsKey is the row of the counts of attributed and
// unattributed installs.
const AttributionStatsKey = "attribution"

// Counters is a row of the stats group's table: counter name → count.
type Counters map[string]int64

// ClickStatsKey is the stats row of a campaign link.
func ClickStatsKey(campaignLinkID string) string { return "clickstats:cl:" + campaignLinkID }

// PostbackStatsKey is the stats row of a postback.
func PostbackStatsKey(postbackID string) string { return "pbstats:pb:" + postbackID }

// Stats is the stats group's definition.
type Stats struct {
	// Group is the group, for NewProcessor and sluicetest.
	Group *sluice.Group[Counters]

	counts *sluice.LoopTopic[[]string]
}

// DefineStats defines the stats group: it reads ClicksTopic,
// ConversionsTopic, ResultsTopic and UnattributedTopic.
func DefineStats() *Stats {
	g := sluice.DefineGroup[Counters](StatsGroup)
	s := &Stats{Group: g}
	sluice.Persist(g, codec.JSON[Counters]())
	sluice.Input(g, ClicksTopic, EventCodec(), s.click)
	sluice.Input(g, ConversionsTopic, ConversionCodec(), s.conversion)
	sluice.Input(g, ResultsTopic, EventCodec(), s.result)
	sluice.Input(g, UnattributedTopic, EventCodec(), s.unattributed)
	s.counts = sluice.Loop(g, codec.JSON[[]string](), s.add)
	return s
}

// ClickCounters are the counters a click adds to its campaign link's row:
// count, country:<CC>, platform:<p>, device:<device_name>,
// device_type:<device>, botclick when bot_name is set and with_adid when
// idfa_comb is; a value left blank adds no counter.
func ClickCounters(click Event) []string {
	names := []string{CountCounter}
	m := click.Meta
	for _, c := range []struct{ prefix, value string }{
		{"country:", m.Country}, {"platform:", m.Platform}, {"device:", m.DeviceName}, {"device_type:", m.Device},
	} {
		if c.value != "" {
			names = append(names, c.prefix+c.value)
		}
	}
	if m.BotName != "" {
		names = append(names, BotClickCounter)
	}
	if !BlankDeviceID(click.Param("idfa_comb")) {
		names = append(names, WithAdidCounter)
	}
	return names
}

func (s *Stats) click(ctx *sluice.Context[Counters], click Event) error {
	cl := click.Param("campaign_link_id")
	if click.Type() != "click" || cl == "" {
		ctx.Logger().Debug("click of no campaign link not counted", "type", click.Type())
		return nil
	}
	return s.count(ctx, ClickStatsKey(cl), ClickCounters(click))
}

func (s *Stats) conversion(ctx *sluice.Context[Counters], c Conversion) error {
	if err := s.count(ctx, AttributionStatsKey, []string{MatchedCounter}); err != nil {
		return err
	}
	cl := c.Click.Param("campaign_link_id")
	if cl == "" {
		return nil
	}
	names := []string{ConversionCounter}
	if cc := c.Install.Meta.Country; cc != "" {
		names = append(names, "conversion:country:"+cc)
	}
	return s.count(ctx, ClickStatsKey(cl), names)
}

func (s *Stats) result(ctx *sluice.Context[Counters], ev Event) error {
	res, err := ParseResult(ev)
	if err != nil {
		return err
	}
	return s.count(ctx, PostbackStatsKey(res.Request.PostbackID), []string{CountCounter, "respcode:" + strconv.Itoa(res.Code)})
}

func (s *Stats) unattributed(ctx *sluice.Context[Counters], _ Event) error {
	return s.count(ctx, AttributionStatsKey, []string{UnmatchedCounter})
}

// count adds one to each of names in the row of key: at once when the
// record being processed has that key, else by a loopback to it.
func (s *Stats) count(ctx *sluice.Context[Counters], key string, names []string) error {
	if ctx.Key() == key {
		return s.add(ctx, names)
	}
	return s.counts.Loopback(ctx, key, names)
}

func (s *Stats) add(ctx *sluice.Context[Counters], names []string) error {
	row, _ := ctx.Value()
	if row == nil {
		row = Counters{}
	}
	for _, n := range names {
		row[n]++
	}
	ctx.SetValue(row)
	return nil
}
