package sluice_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// scrape fetches url and parses the Prometheus text format.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// sumOf adds up the values of a family's series whose labels include want.
func sumOf(fams map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, series int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
next:
	for _, m := range f.Metric {
		labels := make(map[string]string)
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		series++
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, series
}

func TestProcessorMetricsCountRecordsAndLagReachesZero(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) { testProcessorMetrics(t, g) })
	}
}

func testProcessorMetrics(t *testing.T, guarantee sluice.DeliveryGuarantee) {
	const (
		partitions = 4
		n          = 500
	)
	b := startBroker(t)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()

	g := sluice.DefineGroup[counter]("metered")
	sluice.Persist(g, codec.JSON[counter]())
	echo := sluice.Output(g, "metered-echo", codec.String())
	sluice.Input(g, "metered-in", codec.String(), func(ctx *sluice.Context[counter], v string) error {
		c, _ := ctx.Value()
		c.Count++
		ctx.SetValue(c)
		return echo.Emit(ctx, ctx.Key(), v)
	})
	dir := t.TempDir()
	opts := append(processorOpts(b, partitions, dir), sluice.Metrics(reg), sluice.Guarantee(guarantee),
		sluice.Storage(pebble.Builder(dir, pebble.CountRows())))
	p, err := sluice.NewProcessor(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()

	em, err := sluice.NewEmitter("metered-in", codec.String(), append(emitterOpts(b, partitions), sluice.Metrics(reg))...)
	if err != nil {
		t.Fatal(err)
	}
	keys := 20
	for i := range n {
		em.EmitAsync(fmt.Sprintf("k%d", i%keys), "v", nil)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}

	var fams map[string]*dto.MetricFamily
	waitFor(t, 60*time.Second, func() error {
		// The lag counts once it was measured after every record was
		// written; the scrape below sees that measurement or a later one.
		var written int64
		for _, ps := range p.Stats().Partitions {
			for _, in := range ps.Inputs {
				written += in.HighWatermark
			}
		}
		if written != n {
			return fmt.Errorf("lag measured over %d records of %d", written, n)
		}
		if fams, err = scrape(srv.URL); err != nil {
			return err
		}
		group := map[string]string{"group": "metered"}
		if got, _ := sumOf(fams, "sluice_records_consumed_total", map[string]string{"group": "metered", "topic": "metered-in"}); got != n {
			return fmt.Errorf("consumed %v of %d", got, n)
		}
		if got, _ := sumOf(fams, "sluice_records_produced_total", map[string]string{"group": "metered", "topic": "metered-echo"}); got != n {
			return fmt.Errorf("produced %v outputs of %d", got, n)
		}
		lag, series := sumOf(fams, "sluice_consumer_lag_records", group)
		if series != partitions || lag != 0 {
			return fmt.Errorf("lag %v over %d series, want 0 over %d", lag, series, partitions)
		}
		if rows, _ := sumOf(fams, "sluice_table_rows", group); rows != float64(keys) {
			return fmt.Errorf("table rows %v, want %d", rows, keys)
		}
		return nil
	})
	var bytes int
	for i := range n {
		bytes += len(fmt.Sprintf("k%d", i%keys)) + len("v")
	}
	for name, want := range map[string]float64{
		"sluice_emitter_records_total":    n,
		"sluice_bytes_consumed_total":     float64(bytes),
		"sluice_handler_duration_seconds": n,
	} {
		if got, _ := sumOf(fams, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if changelog, _ := sumOf(fams, "sluice_records_produced_total", map[string]string{"topic": "metered-table"}); changelog < float64(keys) {
		t.Errorf("changelog records produced %v, want at least %d", changelog, keys)
	}
	if running, _ := sumOf(fams, "sluice_partitions", map[string]string{"group": "metered", "state": "running"}); running != partitions {
		t.Errorf("running partitions %v, want %d", running, partitions)
	}
	committed, _ := sumOf(fams, "sluice_transactions_total", map[string]string{"group": "metered", "outcome": "committed"})
	if guarantee == sluice.ExactlyOnce && committed < 1 {
		t.Errorf("exactly once: %v transactions committed", committed)
	}
	if commits, _ := sumOf(fams, "sluice_commit_duration_seconds", map[string]string{"group": "metered"}); commits < 1 {
		t.Errorf("no commit timed")
	}

	s := p.Stats()
	if s.Group != "metered" || s.Consumed != n || s.Produced < int64(n+keys) {
		t.Errorf("stats: group %q consumed %d produced %d", s.Group, s.Consumed, s.Produced)
	}
	for _, ps := range s.Partitions {
		if ps.Lag != 0 || len(ps.Inputs) != 1 || ps.Inputs[0].Committed != ps.Inputs[0].HighWatermark || ps.LagMeasured.IsZero() {
			t.Errorf("partition %d: lag %d inputs %+v measured %v", ps.Partition, ps.Lag, ps.Inputs, ps.LagMeasured)
		}
	}
}

func TestMetricsOfTwoProcessorsShareARegistry(t *testing.T) {
	b := startBroker(t)
	reg := prometheus.NewRegistry()
	for _, name := range []string{"first", "second"} {
		opts := append(processorOpts(b, 2, t.TempDir()), sluice.Metrics(reg))
		if _, err := sluice.NewProcessor(defineCounter(name, name+"-in"), opts...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := sluice.NewView("first-table", codec.JSON[counter](), append(viewOpts(b, 2), sluice.Metrics(reg))...); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsAndStatsCountSkippedRecordsAndKeepTheLastError(t *testing.T) {
	b := startBroker(t)
	reg := prometheus.NewRegistry()
	g := sluice.DefineGroup[counter]("skipping")
	sluice.Persist(g, codec.JSON[counter]())
	sluice.Input(g, "skipping-in", codec.String(), func(ctx *sluice.Context[counter], v string) error {
		if v == "bad" {
			return fmt.Errorf("cannot count %q", v)
		}
		c, _ := ctx.Value()
		c.Count++
		ctx.SetValue(c)
		return nil
	})
	opts := append(processorOpts(b, 2, t.TempDir()), sluice.Metrics(reg), sluice.OnError(sluice.Skip))
	p, err := sluice.NewProcessor(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	em, err := sluice.NewEmitter("skipping-in", codec.String(), emitterOpts(b, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i, v := range []string{"ok", "bad", "ok", "bad", "bad", "ok"} {
		if err := em.Emit(ctx, fmt.Sprintf("k%d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, func() error {
		fams, err := reg.Gather()
		if err != nil {
			return err
		}
		byName := make(map[string]*dto.MetricFamily)
		for _, f := range fams {
			byName[f.GetName()] = f
		}
		if got, _ := sumOf(byName, "sluice_records_failed_total", map[string]string{"group": "skipping", "outcome": "skipped"}); got != 3 {
			return fmt.Errorf("skipped %v, want 3", got)
		}
		if got, _ := sumOf(byName, "sluice_records_consumed_total", nil); got != 6 {
			return fmt.Errorf("consumed %v, want 6", got)
		}
		return nil
	})
	s := p.Stats()
	if s.Skipped != 3 || s.LastError == nil || !strings.Contains(s.LastError.Message, `cannot count "bad"`) || s.LastError.Time.IsZero() {
		t.Fatalf("stats: skipped %d, last error %+v", s.Skipped, s.LastError)
	}
	var withError int
	for _, ps := range s.Partitions {
		if ps.LastError != nil {
			withError++
		}
	}
	if withError == 0 {
		t.Errorf("no partition has a last error: %+v", s.Partitions)
	}
}
