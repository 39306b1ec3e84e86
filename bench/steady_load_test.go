package bench

// The load of BenchmarkSteady and how its latency is measured: a producer
// that writes input records at a fixed rate, each with the time it was
// produced in a header, and a reader of committed output records that
// records, for every output, how long after its input it arrived.

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/twmb/franz-go/pkg/kgo"
)

// producedAtHeader is the header in which an input record of BenchmarkSteady
// carries the time it was produced at, in Unix nanoseconds (8 bytes, big
// endian); both sides copy it to the outputs the record leads to.
const producedAtHeader = "produced-at"

// latencyAccuracy is the relative accuracy of the latency quantiles: 1%.
const latencyAccuracy = 0.01

// window is the time span whose records are measured.
type window struct {
	start, end time.Time
}

func (w window) holds(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// steadyProducer writes input records at a fixed rate. The keys and values
// are those of BenchmarkCountGroup's input, made once, so that making them
// costs the parent process nothing during the run.
type steadyProducer struct {
	cl       *kgo.Client
	keys     [][]byte
	values   [][]byte
	seq      int
	failed   firstError
	inWindow atomic.Int64 // records produced within the measured window
	total    atomic.Int64 // records produced
}

func newSteadyProducer(cl *kgo.Client) *steadyProducer {
	p := &steadyProducer{cl: cl, keys: make([][]byte, keys), values: make([][]byte, keys)}
	for i := range keys {
		p.keys[i], p.values[i] = inputKey(i), inputValue(i)
	}
	return p
}

// produce writes one record, stamped with the time it is handed to the
// client.
func (p *steadyProducer) produce(ctx context.Context, w window) {
	i := p.seq % keys
	p.seq++
	now := time.Now()
	r := &kgo.Record{
		Topic:   inputTopic,
		Key:     p.keys[i],
		Value:   p.values[i],
		Headers: []kgo.RecordHeader{{Key: producedAtHeader, Value: binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))}},
	}
	p.cl.Produce(ctx, r, p.failed.promise)
	p.total.Add(1)
	if w.holds(now) {
		p.inWindow.Add(1)
	}
}

// run produces rate records a second, spread over each millisecond, from
// now until w ends. A producer that falls behind (its client buffers as
// much as it may) catches up as fast as the client takes records, and never
// runs ahead of the rate.
func (p *steadyProducer) run(ctx context.Context, rate float64, w window) {
	began := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for {
		now := time.Now()
		if !now.Before(w.end) || ctx.Err() != nil {
			return
		}
		due := int(rate * now.Sub(began).Seconds())
		for ; sent < due && ctx.Err() == nil; sent++ {
			p.produce(ctx, w)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// latencyReader reads the committed records of an output topic from its
// start and measures, for every record carrying producedAtHeader, how long
// after its input was produced it arrived.
type latencyReader struct {
	cl *kgo.Client

	mu         sync.Mutex
	w          window // of the records to measure; zero until set
	lat        *ddsketch.DDSketchWithExactSummaryStatistics
	measured   int64          // outputs of inputs produced within w
	arrived    int64          // outputs that arrived within w
	total      int64          // outputs read
	partitions map[int32]bool // partitions an output was read from
	err        error
	done       chan struct{}
}

// startLatencyReader starts reading with cl, a client of no group that
// consumes the output topic from its start, until ctx is done.
func startLatencyReader(ctx context.Context, cl *kgo.Client) (*latencyReader, error) {
	lat, err := ddsketch.NewDefaultDDSketchWithExactSummaryStatistics(latencyAccuracy)
	if err != nil {
		return nil, err
	}
	r := &latencyReader{cl: cl, lat: lat, partitions: make(map[int32]bool), done: make(chan struct{})}
	go r.read(ctx)
	return r, nil
}

func (r *latencyReader) read(ctx context.Context) {
	defer close(r.done)
	for {
		fetches := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		r.mu.Lock()
		fetches.EachError(func(t string, p int32, err error) {
			if r.err == nil {
				r.err = fmt.Errorf("read %s/%d: %w", t, p, err)
			}
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			r.total++
			r.partitions[rec.Partition] = true
			if r.w.holds(now) {
				r.arrived++
			}
			for _, h := range rec.Headers {
				if h.Key != producedAtHeader || len(h.Value) != 8 {
					continue
				}
				at := time.Unix(0, int64(binary.BigEndian.Uint64(h.Value)))
				if r.w.holds(at) {
					r.measured++
					_ = r.lat.Add(float64(now.Sub(at).Microseconds()))
				}
			}
		})
		r.mu.Unlock()
	}
}

// measure sets the window of the records to measure.
func (r *latencyReader) measure(w window) {
	r.mu.Lock()
	r.w = w
	r.mu.Unlock()
}

// counts returns how many outputs were read, from how many partitions, and
// how many of them were measured.
func (r *latencyReader) counts() (total int64, partitions int, measured int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total, len(r.partitions), r.measured, r.err
}

// latencies are the quantiles of the measured latencies.
type latencies struct {
	n                        int64
	p50, p90, p99, p999, max time.Duration
}

// latencies returns the quantiles of what was measured so far.
func (r *latencyReader) latencies() latencies {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := latencies{n: r.measured}
	if r.lat.IsEmpty() {
		return l
	}
	at := func(q float64) time.Duration {
		v, _ := r.lat.GetValueAtQuantile(q)
		return time.Duration(v) * time.Microsecond
	}
	l.p50, l.p90, l.p99, l.p999 = at(0.5), at(0.9), at(0.99), at(0.999)
	maxUS, _ := r.lat.GetMaxValue()
	l.max = time.Duration(maxUS) * time.Microsecond
	return l
}

// ms formats d in milliseconds with three significant digits.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 3, 64)
}
