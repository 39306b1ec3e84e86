package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// defaultSteadyDuration is how long BenchmarkSteady measures each side
	// at each rate.
	defaultSteadyDuration = 10 * time.Second
	// defaultSteadyRates are the rates BenchmarkSteady offers, in records
	// a second: two the raw client keeps up with on this kind of machine,
	// and one it does not.
	defaultSteadyRates = "50000,100000,300000"
	// steadyWarmup is how long the load runs before the measured window,
	// so that clients, batches and caches have settled.
	steadyWarmup = 2 * time.Second
	// steadyDrain is how long after the window the outputs of its records
	// are waited for; what has not arrived by then counts as late.
	steadyDrain = 5 * time.Second
	// steadyReadyTimeout bounds the wait for a side to process its first
	// records.
	steadyReadyTimeout = time.Minute
	// steadyHalf is the rate that stands for half the raw side's maximum
	// throughput: half of what it put out at a rate it did not keep up
	// with (see halfRate).
	steadyHalf = "half"
	// steadyOverloadRate is the first rate the raw side is offered to find
	// its maximum throughput, when no rate given is higher; steadyMaxRate
	// is the last.
	steadyOverloadRate = 300000
	steadyMaxRate      = 2400000
)

var (
	steadyDurationFlag = flag.Duration("steady-duration", 0,
		"how long BenchmarkSteady measures each side at each rate (default $SLUICE_BENCH_STEADY_DURATION, else 10s)")
	steadyRatesFlag = flag.String("steady-rates", "",
		"comma-separated rates BenchmarkSteady offers, in records a second, or "+steadyHalf+
			" for half the raw side's output at saturation (default $SLUICE_BENCH_STEADY_RATES, else "+defaultSteadyRates+")")
)

// steadyDuration returns how long BenchmarkSteady measures each run.
func steadyDuration(b *testing.B) time.Duration {
	b.Helper()
	if *steadyDurationFlag > 0 {
		return *steadyDurationFlag
	}
	if s := os.Getenv("SLUICE_BENCH_STEADY_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("SLUICE_BENCH_STEADY_DURATION=%q: want a positive duration", s)
		}
		return d
	}
	return defaultSteadyDuration
}

// steadyRates returns the rates BenchmarkSteady offers; 0 stands for
// steadyHalf.
func steadyRates(b *testing.B) []int {
	b.Helper()
	s := *steadyRatesFlag
	if s == "" {
		s = os.Getenv("SLUICE_BENCH_STEADY_RATES")
	}
	if s == "" {
		s = defaultSteadyRates
	}
	var rates []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == steadyHalf {
			rates = append(rates, 0)
			continue
		}
		r, err := strconv.Atoi(f)
		if err != nil || r <= 0 {
			b.Fatalf("steady rates %q: want positive integers or %s separated by commas", s, steadyHalf)
		}
		rates = append(rates, r)
	}
	return rates
}

// halfRate returns half the output rate of the raw side at its saturation:
// at the highest of rates if it did not keep up with it there, else at
// steadyOverloadRate or twice the highest rate it kept up with, as often as
// it keeps up, up to steadyMaxRate. Those runs are of the raw side alone,
// and their rates are returned with it, for the table.
func halfRate(b *testing.B, rates []int, results map[int]map[string]steadyResult, run func(rate int, sides []steadySide)) (half int, extra []int) {
	b.Helper()
	rate := slices.Max(rates)
	for {
		raw, ok := results[rate]["raw"]
		if !ok && rate > 0 {
			run(rate, steadySides[:1])
			if raw, ok = results[rate]["raw"]; !ok {
				b.Fatalf("the raw side did not run at %d rec/s, which %s needs: let -bench match rate=%d/raw too", rate, steadyHalf, rate)
			}
			extra = append(extra, rate)
		}
		// Saturated: the producer could not offer the rate (the broker
		// took no more), or the raw side did not answer it all.
		if ok && (raw.in < 0.95*float64(rate) || raw.out < 0.95*raw.in || raw.late > 0) {
			return int(raw.out / 2), extra
		}
		if rate >= steadyMaxRate {
			b.Fatalf("the raw side kept up with %d rec/s (%.0f out): its maximum is higher than %s can tell", rate, raw.out, steadyHalf)
		}
		rate = min(max(steadyOverloadRate, 2*rate), steadyMaxRate)
	}
}

// steadyConfig is one run of BenchmarkSteady.
type steadyConfig struct {
	rate     float64       // offered, in records a second
	warmup   time.Duration // of load before the window
	duration time.Duration // of the measured window
	// drain is how long after the window its outputs are waited for;
	// waitAll waits for all of them instead, drain at most.
	drain   time.Duration
	waitAll bool
}

// steadyResult is what one run of BenchmarkSteady measured.
type steadyResult struct {
	in, out float64 // records a second produced to the input, and arrived in the output, during the window
	lat     latencies
	cpu     time.Duration // of the child process during the window; 0 if unknown
	wall    time.Duration // between the two readings of cpu
	late    int64         // inputs of the window whose output had not arrived after the drain
	outputs int64         // output records arrived during the window
	inputs  int64         // input records produced during the window
	commits int64         // transactions the child committed during the window
}

// commitsPerSecond is how many transactions the child committed a second
// during the window.
func (r steadyResult) commitsPerSecond() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.commits) / r.wall.Seconds()
}

// cpuPerRecord is the child's CPU time per output record that arrived in the
// window, in nanoseconds, or 0 if unknown.
func (r steadyResult) cpuPerRecord() float64 {
	if r.cpu <= 0 || r.outputs == 0 {
		return 0
	}
	return float64(r.cpu.Nanoseconds()) / float64(r.outputs)
}

// cores is the child's CPU time over the window's wall time.
func (r steadyResult) cores() float64 {
	if r.cpu <= 0 || r.wall <= 0 {
		return 0
	}
	return r.cpu.Seconds() / r.wall.Seconds()
}

// runSteady runs side in a child process against a broker of its own, at
// cfg's rate: it waits for the side to answer its first records, then
// produces at the rate for the warm-up and the window, and measures the
// window.
func runSteady(tb testing.TB, side steadySide, cfg steadyConfig) (res steadyResult, err error) {
	tb.Helper()
	br := startBroker(tb)
	defer func() { _ = br.Close() }()
	admin := newClient(tb, br)
	for _, t := range []string{inputTopic, rawOutput, sluiceOutput} {
		createTopic(tb, admin, t, false)
	}
	admin.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rd := newClient(tb, br,
		kgo.ConsumeTopics(side.output),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	defer rd.Close()
	reader, err := startLatencyReader(ctx, rd)
	if err != nil {
		return res, err
	}
	defer func() {
		cancel()
		<-reader.done
	}()
	pcl := newClient(tb, br, kgo.ProducerLinger(0))
	defer pcl.Close()
	prod := newSteadyProducer(pcl)

	child := startSteadyChild(tb, side.name, br.Addrs())
	defer func() {
		if serr := child.stop(); serr != nil && err == nil {
			err = fmt.Errorf("%s: %w", side.name, serr)
		}
	}()

	// Ready once it has answered records of every partition, and all of
	// them.
	ready := time.Now().Add(steadyReadyTimeout)
	for {
		total, parts, _, rerr := reader.counts()
		if rerr != nil {
			return res, rerr
		}
		if parts == partitions && total == prod.total.Load() {
			break
		}
		if time.Now().After(ready) {
			return res, fmt.Errorf("%s: answered %d of %d records within %v; the child said:\n%s",
				side.name, total, prod.total.Load(), steadyReadyTimeout, child.output())
		}
		if total == prod.total.Load() {
			for range 100 {
				prod.produce(ctx, window{})
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	now := time.Now()
	w := window{start: now.Add(cfg.warmup), end: now.Add(cfg.warmup + cfg.duration)}
	reader.measure(w)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		prod.run(ctx, cfg.rate, w)
	}()
	time.Sleep(time.Until(w.start))
	u0, err := child.usage()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	time.Sleep(time.Until(w.end))
	u1, err := child.usage()
	if err != nil {
		return res, err
	}
	res.wall = time.Since(t0)
	<-produced
	if u0.cpu >= 0 && u1.cpu >= 0 {
		res.cpu = u1.cpu - u0.cpu
	}
	res.commits = u1.commits - u0.commits
	res.inputs = prod.inWindow.Load()
	reader.mu.Lock()
	res.outputs = reader.arrived
	reader.mu.Unlock()

	drained := time.Now().Add(cfg.drain)
	for {
		_, _, measured, rerr := reader.counts()
		if rerr != nil {
			return res, rerr
		}
		res.late = res.inputs - measured
		if res.late <= 0 || time.Now().After(drained) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := prod.failed.get(); err != nil {
		return res, fmt.Errorf("produce: %w", err)
	}
	if cfg.waitAll && res.late > 0 {
		return res, fmt.Errorf("%s: %d of the %d records of the window had no output %v after it", side.name, res.late, res.inputs, cfg.drain)
	}
	res.lat = reader.latencies()
	secs := cfg.duration.Seconds()
	res.in, res.out = float64(res.inputs)/secs, float64(res.outputs)/secs
	return res, nil
}

// BenchmarkSteady offers records at fixed rates to the count group's raw
// franz-go side and its sluice sides, at least once and exactly once, each
// in a child process of its own, and reports the rates achieved, the
// latency from producing an input to reading its output, and the CPU the
// processor used per record. See the package documentation.
func BenchmarkSteady(b *testing.B) {
	cfg := steadyConfig{warmup: steadyWarmup, duration: steadyDuration(b), drain: steadyDrain}
	rates := steadyRates(b)
	results := make(map[int]map[string]steadyResult)
	// run offers rate to sides, as the sub-benchmark name.
	run := func(name string, rate int, sides []steadySide) {
		if results[rate] == nil {
			results[rate] = make(map[string]steadyResult)
		}
		b.Run(name, func(b *testing.B) {
			for _, side := range sides {
				b.Run(side.name, func(b *testing.B) {
					var res steadyResult
					for range b.N {
						var err error
						cfg := cfg
						cfg.rate = float64(rate)
						if res, err = runSteady(b, side, cfg); err != nil {
							b.Fatal(err)
						}
					}
					results[rate][side.name] = res
					reportSteady(b, res, results[rate]["raw"], side.name != "raw")
				})
			}
		})
	}
	// The fixed rates run first, so that the highest of them can tell
	// the raw side's maximum throughput.
	var fixed []int
	for _, rate := range rates {
		if rate > 0 {
			fixed = append(fixed, rate)
			run(fmt.Sprintf("rate=%d", rate), rate, steadySides)
		}
	}
	shown := fixed
	if len(fixed) < len(rates) {
		half, extra := halfRate(b, append([]int{0}, fixed...), results, func(rate int, sides []steadySide) {
			run(fmt.Sprintf("rate=%d", rate), rate, sides)
		})
		// Named for what it stands for, so that runs on machines of other
		// speeds compare; the table shows the rate it came to.
		run("rate="+steadyHalf, half, steadySides)
		shown = append(append(fixed, extra...), half)
	}
	printSteadyTable(shown, results)
}

// reportSteady reports res as metrics of b and, if compare, its ratios to
// raw, the raw side's result at the same rate, where raw ran.
func reportSteady(b *testing.B, res, raw steadyResult, compare bool) {
	b.Helper()
	b.ReportMetric(res.in, "in-rec/s")
	b.ReportMetric(res.out, "out-rec/s")
	for _, m := range []struct {
		d    time.Duration
		unit string
	}{{res.lat.p50, "p50-ms"}, {res.lat.p90, "p90-ms"}, {res.lat.p99, "p99-ms"}, {res.lat.p999, "p99.9-ms"}, {res.lat.max, "max-ms"}} {
		b.ReportMetric(float64(m.d)/float64(time.Millisecond), m.unit)
	}
	b.ReportMetric(float64(res.late), "late-rec")
	if res.commits > 0 {
		b.ReportMetric(res.commitsPerSecond(), "txn/s")
	}
	if c := res.cpuPerRecord(); c > 0 {
		b.ReportMetric(c, "cpu-ns/rec")
		b.ReportMetric(res.cores(), "cores")
		if rc := raw.cpuPerRecord(); compare && rc > 0 {
			b.ReportMetric(c/rc, "cpu-ratio")
		}
	}
	if compare && raw.lat.p99 > 0 {
		b.ReportMetric(float64(res.lat.p99)/float64(raw.lat.p99), "p99-ratio")
	}
	if compare && raw.out > 0 {
		b.ReportMetric(res.out/raw.out, "out-ratio")
	}
}

// printSteadyTable prints every result as a Markdown table, with each sluice
// side's ratios to the raw side at the same rate.
func printSteadyTable(rates []int, results map[int]map[string]steadyResult) {
	var s strings.Builder
	s.WriteString("| offered rec/s | side | in rec/s | out rec/s | p50 / p90 / p99 / p99.9 / max ms | late | cpu-ns/rec | cores | txn/s | cpu ratio | p50 ratio | p99 ratio | out ratio |\n")
	s.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	rows := 0
	for _, rate := range rates {
		raw, hasRaw := results[rate]["raw"]
		for _, side := range steadySides {
			res, ok := results[rate][side.name]
			if !ok {
				continue
			}
			rows++
			ratio := func(a, b float64) string {
				if !hasRaw || side.name == "raw" || a <= 0 || b <= 0 {
					return "—"
				}
				return strconv.FormatFloat(a/b, 'f', 2, 64)
			}
			l := res.lat
			fmt.Fprintf(&s, "| %d | %s | %.0fk | %.0fk | %s / %s / %s / %s / %s | %d | %.0f | %.2f | %.0f | %s | %s | %s | %s |\n",
				rate, side.name, res.in/1e3, res.out/1e3,
				ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max), max(res.late, 0),
				res.cpuPerRecord(), res.cores(), res.commitsPerSecond(),
				ratio(res.cpuPerRecord(), raw.cpuPerRecord()),
				ratio(float64(l.p50), float64(raw.lat.p50)),
				ratio(float64(l.p99), float64(raw.lat.p99)),
				ratio(res.out, raw.out))
		}
	}
	if rows > 0 {
		fmt.Print("BenchmarkSteady:\n" + s.String())
	}
}

// TestSteadySidesAnswerEveryRecord runs every side of BenchmarkSteady for a
// second at a low rate and checks that the output of every record of the
// window arrived, that every one was measured, and that the exactly-once
// sides reported the transactions they committed.
func TestSteadySidesAnswerEveryRecord(t *testing.T) {
	cfg := steadyConfig{rate: 2000, warmup: 200 * time.Millisecond, duration: time.Second, drain: time.Minute, waitAll: true}
	for _, side := range steadySides {
		t.Run(side.name, func(t *testing.T) {
			res, err := runSteady(t, side, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.inputs == 0 {
				t.Fatal("no record was produced in the window")
			}
			if res.lat.n != res.inputs {
				t.Fatalf("measured the latency of %d records, want the %d of the window", res.lat.n, res.inputs)
			}
			if strings.HasPrefix(side.name, "exactly-once") && res.commits == 0 {
				t.Fatal("the child reported no transaction committed during the window")
			}
			t.Logf("%s: %d records, p50 %v, p99 %v, max %v, %.0f cpu-ns/rec, %d transactions",
				side.name, res.inputs, res.lat.p50, res.lat.p99, res.lat.max, res.cpuPerRecord(), res.commits)
		})
	}
}
