package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store/pebble"
)

// takeoverHeartbeat is the heartbeat interval of BenchmarkTakeover's
// processors.
const takeoverHeartbeat = 100 * time.Millisecond

// takeoverMember is one processor of BenchmarkTakeover: the restore group
// over the pre-filled table, its stores in a state dir of its own, and the
// time it first handled a record of each partition since mark.
type takeoverMember struct {
	p   *sluice.Processor[[]byte]
	run *running

	mu      sync.Mutex
	mark    time.Time
	handled map[int32]time.Duration // since mark
	changed chan struct{}           // closed and renewed when handled grows
}

func startTakeoverMember(tb testing.TB, addrs []string, standbys int) *takeoverMember {
	tb.Helper()
	m := &takeoverMember{handled: make(map[int32]time.Duration), changed: make(chan struct{}), mark: time.Now()}
	g := sluice.DefineGroup[[]byte](restoreGroup)
	sluice.Persist(g, codec.Bytes())
	sluice.Input(g, restoreInput, codec.Bytes(), func(ctx *sluice.Context[[]byte], _ []byte) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.handled[ctx.Partition()]; !ok {
			m.handled[ctx.Partition()] = time.Since(m.mark)
			close(m.changed)
			m.changed = make(chan struct{})
		}
		return nil
	})
	p, err := sluice.NewProcessor(g,
		sluice.Brokers(addrs...),
		sluice.TopicDefaults(partitions, 1),
		sluice.Storage(pebble.Builder(tb.TempDir())),
		sluice.CommitInterval(commitInterval),
		sluice.Standbys(standbys),
		// A member learns that the group rebalances from a heartbeat;
		// kgo's default interval, 3s, would add up to 3s to either side.
		sluice.KafkaOptions(kgo.HeartbeatInterval(takeoverHeartbeat)),
	)
	if err != nil {
		tb.Fatal(err)
	}
	m.p, m.run = p, start(p.Run)
	return m
}

// reset forgets what was handled and starts timing from now.
func (m *takeoverMember) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.handled)
	m.mark = time.Now()
}

// waitHandled waits until the member handled a record of every partition
// in ps and returns the time of the last of them since the mark.
func (m *takeoverMember) waitHandled(ctx context.Context, ps []int32) (time.Duration, error) {
	for {
		m.mu.Lock()
		var last time.Duration
		all := true
		for _, p := range ps {
			d, ok := m.handled[p]
			all = all && ok
			last = max(last, d)
		}
		changed := m.changed
		m.mu.Unlock()
		if all {
			return last, nil
		}
		select {
		case <-changed:
		case <-m.run.done:
			return 0, fmt.Errorf("processor stopped: %v", m.run.err)
		case <-ctx.Done():
			return 0, fmt.Errorf("partitions %v not all handled: %w", ps, ctx.Err())
		}
	}
}

// runningPartitions returns the partitions the member has restored and runs.
func (m *takeoverMember) runningPartitions() []int32 {
	var ps []int32
	for _, st := range m.p.Stats().Partitions {
		if st.State == "running" {
			ps = append(ps, st.Partition)
		}
	}
	return ps
}

// settle waits until a and b run half the partitions each and, with
// standbys, until a follows b's partitions with nothing left to read.
func settle(ctx context.Context, a, b *takeoverMember, standbys bool) ([]int32, error) {
	for {
		pa, pb := a.runningPartitions(), b.runningPartitions()
		done := len(pa) == partitions/2 && len(pb) == partitions/2
		if done && standbys {
			var warm []int32
			for _, s := range a.p.Stats().Standbys {
				if s.State == "following" && s.Behind == 0 {
					warm = append(warm, s.Partition)
				}
			}
			done = slices.Equal(warm, pb)
		}
		if done {
			return pb, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("a runs %v and b %v: %w", pa, pb, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// BenchmarkTakeover times a takeover of half a table's partitions: b owns
// the table first (restoring it whole), a joins and takes half of it, and
// then b stops gracefully. Timed from b's Run returning, when it has left
// the group, to a having handled a new record in each partition b owned,
// which it does only once it has restored them. With standby, both run
// Standbys(1), so a follows b's partitions before b stops; cold is
// without standbys. Both heartbeat every takeoverHeartbeat.
func BenchmarkTakeover(b *testing.B) {
	n := benchRecords(b)
	br := startBroker(b)
	fillTable(b, br, n)
	for _, side := range []struct {
		name     string
		standbys int
	}{{"cold", 0}, {"standby", 1}} {
		b.Run(side.name, func(b *testing.B) {
			b.StopTimer()
			var took time.Duration
			var restored int64
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
				mb := startTakeoverMember(b, br.Addrs(), side.standbys)
				produceOnePerPartition(b, br, restoreInput)
				if _, err := mb.waitHandled(ctx, allPartitions()); err != nil {
					b.Fatal(err)
				}
				ma := startTakeoverMember(b, br.Addrs(), side.standbys)
				moving, err := settle(ctx, ma, mb, side.standbys > 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := mb.run.stop(); err != nil {
					b.Fatal(err)
				}
				ma.reset()
				b.StartTimer()
				produceOnePerPartition(b, br, restoreInput)
				d, err := ma.waitHandled(ctx, moving)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				took += d
				for _, st := range ma.p.Stats().Partitions {
					if slices.Contains(moving, st.Partition) {
						restored += st.Restored
					}
				}
				if err := ma.run.stop(); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
			avg := took / time.Duration(b.N)
			b.ReportMetric(float64(avg.Microseconds())/1000, "ms-takeover")
			b.ReportMetric(float64(restored/int64(b.N)), "rows-restored")
			fmt.Printf("%s (%d rows): takeover of %d partitions %v, %d rows restored\n",
				b.Name(), n, partitions/2, avg.Round(time.Millisecond), restored/int64(b.N))
		})
	}
}

func allPartitions() []int32 {
	ps := make([]int32, partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}
