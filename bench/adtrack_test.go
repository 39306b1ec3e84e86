package bench

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/apps/adtrack"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/store/pebble"
)

// The records of BenchmarkAdTrackAttribution: n/2 clicks on "clicks", each
// keyed by its lookup key as a tracker would, and n/2 installs on "inapp",
// install i from click i's device, keyed by the install's identity.
const rawAdGroup = "raw-adtrack"

// adEpoch is when the benchmark's installs happen: when the topics are
// filled. Not a fixed date: sluice stamps loopback records with the time
// they are written, and stream time, which drops expired clicks, follows
// them.
var adEpoch time.Time

func adDevice(i int) string { return fmt.Sprintf("B0000000-0000-0000-0000-%012d", i) }

func adMeta(i int, ts time.Time) adtrack.Meta {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	b := a.As4()
	return adtrack.Meta{
		Country: "DE", Device: "smartphone", DeviceName: "iPhone", IP: a,
		IPInt:    strconv.FormatUint(uint64(b[0])<<24|uint64(b[1])<<16|uint64(b[2])<<8|uint64(b[3]), 10),
		Platform: "ios", TS: ts,
	}
}

// adClick is click i: a click of one of 50 campaign links with a device id.
func adClick(i int) adtrack.Event {
	ts := adEpoch.Add(-time.Hour)
	p := url.Values{}
	for k, v := range map[string]string{
		"network": "7games", "campaign": "spring", "campaign_link_id": strconv.Itoa(i % 50), "user_id": "1",
		"ad": "ad", "adgroup": "g1", "adid": adDevice(i), "idfa_comb": adDevice(i), "click": "c" + strconv.Itoa(i),
		"partner_data": "pd", "created_at": ts.Format(time.RFC3339), "attr_window_from": ts.Format(time.RFC3339),
		"attr_window_till": adEpoch.Add(24 * time.Hour).Format(time.RFC3339), "reqparams": "a=b",
	} {
		p.Set(k, v)
	}
	ev := adtrack.Event{Path: "/t/click", Meta: adMeta(i, ts), Params: p}
	ev.Params.Set("lookup_key", adtrack.ClickLookupKey(ev))
	return ev
}

func adInstall(i int) adtrack.Event {
	return adtrack.Event{Path: "/t/ist", Meta: adMeta(i, adEpoch), Params: url.Values{"adid": {adDevice(i)}}}
}

// fillAdTrack creates the topics on br and writes the clicks, then the
// installs: n records in all.
func fillAdTrack(tb testing.TB, br *broker.Broker, n int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	for _, topic := range []string{adtrack.ClicksTopic, adtrack.InAppTopic, adtrack.ConversionsTopic, adtrack.UnattributedTopic} {
		createTopic(tb, cl, topic, false)
	}
	adEpoch = time.Now().UTC().Truncate(time.Second)
	half := n / 2
	produceAll(tb, cl, half, func(i int) *kgo.Record {
		c := adClick(i)
		return &kgo.Record{Topic: adtrack.ClicksTopic, Key: []byte(c.Param("lookup_key")), Value: c.AppendWire(nil), Timestamp: c.Meta.TS}
	})
	produceAll(tb, cl, n-half, func(i int) *kgo.Record {
		ev := adInstall(i)
		return &kgo.Record{Topic: adtrack.InAppTopic, Key: []byte("install:" + adtrack.EventID(ev)), Value: ev.AppendWire(nil), Timestamp: ev.Meta.TS}
	})
}

// rawAdConsume is the raw side: a consumer group member of both topics
// that decodes each record as the tracker format, as the attribution does,
// and commits. It returns once it has consumed n records and committed
// them.
func rawAdConsume(ctx context.Context, addrs []string, n int) (stop func(), err error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumerGroup(rawAdGroup),
		kgo.ConsumeTopics(adtrack.ClicksTopic, adtrack.InAppTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitInterval(commitInterval),
	)
	if err != nil {
		return nil, fmt.Errorf("raw: client: %w", err)
	}
	consumed := 0
	var bad error
	for consumed < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			cl.Close()
			return nil, fmt.Errorf("raw: consumed %d of %d records: %w", consumed, n, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			consumed++
			if _, err := adtrack.ParseEvent(r.Value); err != nil && bad == nil {
				bad = err
			}
		})
	}
	if bad != nil {
		cl.Close()
		return nil, fmt.Errorf("raw: %w", bad)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("raw: commit: %w", err)
	}
	return cl.Close, nil
}

// sluiceAttribute is the sluice side: a processor of the attribution
// group, with its table in Pebble under stateDir. It returns once every
// install has its outcome written, a conversion or an unattributed
// record, with a function that stops the processor.
func sluiceAttribute(ctx context.Context, addrs []string, stateDir string, installs int) (stop func() error, err error) {
	p, err := sluice.NewProcessor(adtrack.DefineAttribution(adtrack.AttributionConfig{}).Group,
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
	)
	if err != nil {
		return nil, fmt.Errorf("sluice: %w", err)
	}
	run := start(p.Run)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		_ = run.stop()
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(completionPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-run.done:
			return nil, fmt.Errorf("sluice: processor stopped: %v", run.err)
		case <-ctx.Done():
			_ = run.stop()
			return nil, fmt.Errorf("sluice: %w", ctx.Err())
		case <-tick.C:
		}
		_, conv, err1 := endOffsets(ctx, adm, adtrack.ConversionsTopic)
		_, un, err2 := endOffsets(ctx, adm, adtrack.UnattributedTopic)
		if err1 == nil && err2 == nil && conv+un >= int64(installs) {
			return run.stop, nil
		}
	}
}

// BenchmarkAdTrackAttribution compares the attribution group (clicks
// stored by lookup key, installs walking their keys as loopback records,
// a conversion or an unattributed record each) with the raw franz-go
// client consuming and decoding the same records. Both topics are filled
// before a side starts, so an install may be handled before its click and
// go unmatched; the share matched is logged.
func BenchmarkAdTrackAttribution(b *testing.B) {
	n := benchRecords(b)
	var r results
	for _, name := range []string{"raw", "sluice"} {
		b.Run(name, func(b *testing.B) {
			var (
				br   *broker.Broker
				stop func()
			)
			res := measure(b, n,
				func(int) {
					br = startBroker(b)
					fillAdTrack(b, br, n)
				},
				func(ctx context.Context, _ int) (err error) {
					pprof.Do(ctx, pprof.Labels("side", name), func(ctx context.Context) {
						if name == "raw" {
							stop, err = rawAdConsume(ctx, br.Addrs(), n)
							return
						}
						var s func() error
						s, err = sluiceAttribute(ctx, br.Addrs(), b.TempDir(), n-n/2)
						stop = func() {
							if err := s(); err != nil {
								b.Errorf("sluice: stop: %v", err)
							}
						}
					})
					return err
				},
				func(int) {
					stop()
					if name == "sluice" {
						conv := countRecords(b, br, adtrack.ConversionsTopic)
						b.Logf("%d of %d installs attributed, %d not; %d loopback records", conv, n-n/2,
							countRecords(b, br, adtrack.UnattributedTopic), countRecords(b, br, adtrack.AttributionGroup+"-loop"))
					}
					_ = br.Close()
				})
			r.record(b, name, "raw", res)
		})
	}
	r.report(b, "raw")
}
