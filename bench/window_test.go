package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// The windowed count: records per key in tumbling windows of event time,
// each window's final count emitted when the partition's stream time
// reaches its end.
const (
	windowInput = "window-input"
	// windowKeys is how many distinct keys the records spread over.
	windowKeys = 50_000
	windowSize = 10 * time.Second
	// windowSpan is the event time the records span, ten windows: of a
	// million records, each key is about twice in each window.
	windowSpan = 100 * time.Second

	rawWindowGroup     = "raw-window"
	rawWindowOutput    = "raw-window-counts"
	sluiceWindowGroup  = "sluice-window"
	sluiceWindowOutput = "sluice-window-counts"
)

// windowEpoch is the time of the first record.
var windowEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fillWindowInput creates the windowed count's topics on br and writes n
// records to its input, their timestamps spread evenly over windowSpan.
func fillWindowInput(tb testing.TB, br *broker.Broker, n int) {
	tb.Helper()
	cl := newClient(tb, br)
	defer cl.Close()
	createTopic(tb, cl, windowInput, false)
	createTopic(tb, cl, rawWindowOutput, false)
	createTopic(tb, cl, sluiceWindowOutput, false)
	step := windowSpan / time.Duration(n)
	produceAll(tb, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{
			Topic:     windowInput,
			Key:       strconv.AppendInt([]byte("user-"), int64(i%windowKeys), 10),
			Value:     inputValue(i),
			Timestamp: windowEpoch.Add(time.Duration(i) * step),
		}
	})
}

// windowCount is the value both sides emit for a key's window: its end in
// Unix milliseconds and its count.
func windowCount(end time.Time, n int64) []byte {
	b := strconv.AppendInt(nil, end.UnixMilli(), 10)
	return strconv.AppendInt(append(b, ' '), n, 10)
}

// rawWindowedCount is the raw franz-go side of BenchmarkWindowedCount: per
// partition, a map of the open windows' counts by key, and the partition's
// stream time; a record that moves stream time to a window's end or past
// it first closes that window, producing every key's count.
func rawWindowedCount(ctx context.Context, addrs []string, n int) (stop func(), err error) {
	type partition struct {
		stream int64
		open   map[int64]map[string]int64 // by window end, Unix nanoseconds
	}
	parts := make(map[int32]*partition)
	size := int64(windowSize)
	return rawGroupRun(ctx, addrs, rawWindowGroup, windowInput, n, func(cl *kgo.Client, r *kgo.Record, promise func(*kgo.Record, error)) {
		p := parts[r.Partition]
		if p == nil {
			p = &partition{stream: r.Timestamp.UnixNano(), open: make(map[int64]map[string]int64)}
			parts[r.Partition] = p
		}
		t := r.Timestamp.UnixNano()
		if t > p.stream {
			p.stream = t
			for end, counts := range p.open {
				if end > p.stream {
					continue
				}
				for k, c := range counts {
					cl.Produce(ctx, &kgo.Record{Topic: rawWindowOutput, Key: []byte(k), Value: windowCount(time.Unix(0, end), c)}, promise)
				}
				delete(p.open, end)
			}
		}
		end := (t/size)*size + size
		if end <= p.stream {
			return // late: every window of it has closed
		}
		counts := p.open[end]
		if counts == nil {
			counts = make(map[string]int64, windowKeys/partitions)
			p.open[end] = counts
		}
		counts[string(r.Key)]++
	})
}

// windowGroup is the sluice side's group: a count per key in tumbling
// windows, each final count emitted to sluiceWindowOutput.
func windowGroup() *sluice.Group[struct{}] {
	g := sluice.DefineGroup[struct{}](sluiceWindowGroup)
	out := sluice.Output(g, sluiceWindowOutput, codec.Bytes())
	counts := sluice.Aggregate(g, "counts", sluice.Tumbling(windowSize), sluice.Count[[]byte](),
		func(ctx *sluice.Context[struct{}], r sluice.WindowResult[int64]) error {
			return out.Emit(ctx, r.Key, windowCount(r.Window.End, r.Value))
		})
	sluice.WindowedInput(g, windowInput, codec.Bytes(), counts)
	return g
}

// sluiceWindowedCount is the sluice side of BenchmarkWindowedCount. It
// returns once the group has committed the offsets of all n records, which
// it does only after the results of the windows they closed are
// acknowledged.
func sluiceWindowedCount(ctx context.Context, addrs []string, stateDir string, n int) (stop func() error, err error) {
	p, err := sluice.NewProcessor(windowGroup(),
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(stateDir)),
		sluice.CommitInterval(commitInterval),
	)
	if err != nil {
		return nil, fmt.Errorf("sluice: %w", err)
	}
	run := start(p.Run)
	if err := waitCommitted(ctx, addrs, sluiceWindowGroup, windowInput, int64(n), run); err != nil {
		if serr := run.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("sluice: %w", err)
	}
	return run.stop, nil
}

// BenchmarkWindowedCount compares counting records per key in tumbling
// windows of 10 s and emitting each window's final counts, with the raw
// franz-go client keeping its windows in maps and closing them itself, and
// with a sluice windowed aggregation kept in Pebble. Both sides close the
// same windows, those whose end a later record of their partition reached,
// and must emit the same number of counts.
func BenchmarkWindowedCount(b *testing.B) {
	var rawResults int64
	sides := func(tb testing.TB) map[string]countSide {
		return map[string]countSide{
			"raw": func(ctx context.Context, br *broker.Broker, n int) (func(), error) {
				return rawWindowedCount(ctx, br.Addrs(), n)
			},
			"sluice": sluiceSide(tb, sluiceWindowedCount),
		}
	}
	benchmarkSides(b, fillWindowInput, sides, func(b *testing.B, br *broker.Broker, name string, n int) {
		if name == "raw" {
			rawResults = countRecords(b, br, rawWindowOutput)
			b.Logf("raw: %d window counts", rawResults)
			return
		}
		got := countRecords(b, br, sluiceWindowOutput)
		g := windowGroup()
		b.Logf("sluice: %d window counts, %d changelog records (%d table, %d windows)", got,
			countRecords(b, br, g.TableTopic())+countRecords(b, br, g.WindowsTopic()),
			countRecords(b, br, g.TableTopic()), countRecords(b, br, g.WindowsTopic()))
		if got != rawResults || got == 0 {
			b.Errorf("sluice emitted %d window counts, the raw side %d", got, rawResults)
		}
	})
}
