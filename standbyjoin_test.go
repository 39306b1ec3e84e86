package sluice_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// netGate cuts the connections it dialed from the broker and restores
// them, as a network partition of one machine would: while it is cut,
// every read and write of them waits.
type netGate struct {
	mu   sync.Mutex
	open chan struct{} // closed while traffic flows
	// Cut when a JoinGroup request is written after this many more;
	// negative: never.
	joinsToPass int
}

func newNetGate() *netGate {
	g := &netGate{open: make(chan struct{}), joinsToPass: -1}
	close(g.open)
	return g
}

// cutAtJoin cuts the connections as the client writes a JoinGroup
// request, after letting n more through.
func (g *netGate) cutAtJoin(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joinsToPass = n
}

func (g *netGate) isCut() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		return false
	default:
		return true
	}
}

// writing is told every request the client writes, one per write.
func (g *netGate) writing(b []byte) {
	if len(b) < 6 || int16(binary.BigEndian.Uint16(b[4:6])) != kmsg.JoinGroup.Int16() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.joinsToPass == 0:
		g.open = make(chan struct{})
		g.joinsToPass = -1
	case g.joinsToPass > 0:
		g.joinsToPass--
	}
}

func (g *netGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *netGate) restore() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
}

// pass waits until traffic flows, or done is closed.
func (g *netGate) pass(done <-chan struct{}) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-done:
		return net.ErrClosed
	}
}

func (g *netGate) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if err := g.pass(ctx.Done()); err != nil {
		return nil, err
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, gate: g, closed: make(chan struct{})}, nil
}

type gatedConn struct {
	net.Conn
	gate   *netGate
	closed chan struct{}
	once   sync.Once
}

func (c *gatedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if perr := c.gate.pass(c.closed); perr != nil {
		return 0, perr
	}
	return n, err
}

func (c *gatedConn) Write(b []byte) (int, error) {
	c.gate.writing(b)
	if err := c.gate.pass(c.closed); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *gatedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// A processor cut off from the broker for longer than its session timeout
// is dropped from the group, and its partitions move to the other, which
// holds them warm. Back, it joins as a new member holding warm copies of
// the other's partitions (its standbys went on), and the balancer gives it
// those: they restore nothing, where the partitions it owned before would
// restore everything written to them while it was away.
func TestJoinGivesARejoiningMemberThePartitionsItHoldsWarm(t *testing.T) {
	br := startBroker(t)
	const parts = 4
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("rejoin", "events", &calls)
	eos := sluice.Guarantee(sluice.ExactlyOnce)
	fast := sluice.KafkaOptions(kgo.HeartbeatInterval(200 * time.Millisecond))
	gate := newNetGate()
	pa, _ := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), eos, fast))
	pb, _ := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), eos,
		sluice.SessionTimeout(6*time.Second),
		sluice.KafkaOptions(kgo.HeartbeatInterval(200*time.Millisecond), kgo.Dialer(gate.dial))))
	v := startView(t, "rejoin-table", codec.JSON[counter](), viewOpts(br, parts)...)

	const rows = 2000
	emitN(t, em, rows, rows, want)
	expectCounts(t, v, want, 60*time.Second)
	splitEvenly(t, pa, pb, parts)
	left, warm := owned(pb), owned(pa)
	t.Logf("b runs %v and keeps copies of %v", left, warm)

	// Read committed, the view shows b's rows once b committed them with
	// their offsets: b has no transaction open when it is cut off.
	gate.cut()
	waitFor(t, 60*time.Second, func() error {
		if got := owned(pa); len(got) != parts {
			return fmt.Errorf("a runs %v, want all %d partitions once b is dropped", got, parts)
		}
		return nil
	})
	// Records for the partitions b ran only, which a processes meanwhile.
	const away = 400
	sent := 0
	for i := 0; sent < away; i++ {
		key := fmt.Sprintf("away-%d", i)
		if !slices.Contains(left, sluice.Hasher{}.Partition(key, parts)) {
			continue
		}
		sent++
		want[key]++
		em.EmitAsync(key, "x", func(err error) {
			if err != nil {
				t.Errorf("emit: %v", err)
			}
		})
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectCounts(t, v, want, 30*time.Second)
	gate.restore()

	waitFor(t, 60*time.Second, func() error {
		oa, ob := owned(pa), owned(pb)
		if len(oa) != parts/2 || len(ob) != parts/2 {
			return fmt.Errorf("a runs %v and b runs %v, want %d each", oa, ob, parts/2)
		}
		return nil
	})
	var restored int64
	for _, ps := range pb.Stats().Partitions {
		if ps.State == "running" {
			restored += ps.Restored
		}
	}
	t.Logf("back, b runs %v and restored %d changelog records for them", owned(pb), restored)
	if got := owned(pb); !slices.Equal(got, warm) {
		t.Fatalf("back, b runs %v and restored %d changelog records; want it given %v, which it holds warm, not %v, which changed by %d records while it was away",
			got, restored, warm, left, away)
	}
	if restored != 0 {
		t.Fatalf("b restored %d changelog records for %v, which it held warm and nothing changed", restored, warm)
	}

	emitN(t, em, 400, 100, want)
	expectCounts(t, v, want, 30*time.Second)
}

// A member that joins follows the partitions it is to take over while their
// owner revokes them, and takes those copies over. The owner's join of the
// round that hands them over is held here (its network is cut as it sends
// it) until the new member's copies have caught up, so the takeover
// restores nothing.
func TestJoinTakesOverTheCopiesItFollowedWhileTheOwnerRevoked(t *testing.T) {
	br := startBroker(t)
	const parts = 4
	em := newEmitter(t, "events", emitterOpts(br, parts))
	want := make(map[string]int64)
	var calls atomic.Int64
	g := countingGroup("warmup", "events", &calls)
	gate := newNetGate()
	pa, _ := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce),
		sluice.SessionTimeout(20*time.Second), sluice.KafkaOptions(kgo.Dialer(gate.dial))))
	v := startView(t, "warmup-table", codec.JSON[counter](), viewOpts(br, parts)...)
	const rows = 2000
	emitN(t, em, rows, rows, want)
	expectCounts(t, v, want, 60*time.Second)

	// b's join makes a join again, with all it owns; then a revokes what
	// b is to take and joins once more, which is held.
	gate.cutAtJoin(1)
	pb, _ := standbyProcessor(t, g, append(processorOpts(br, parts, t.TempDir()), sluice.Guarantee(sluice.ExactlyOnce)))
	// Well within a's session timeout, which goes on while a is cut off.
	waitFor(t, 15*time.Second, func() error {
		if !gate.isCut() {
			return errors.New("a has not joined the round that hands partitions to b")
		}
		if got := owned(pb); len(got) != 0 {
			return fmt.Errorf("b runs %v before a revoked anything", got)
		}
		var caught []int32
		for _, s := range pb.Stats().Standbys {
			if s.State == "following" && s.Behind == 0 && s.Offset > 0 {
				caught = append(caught, s.Partition)
			}
		}
		if len(caught) != parts {
			return fmt.Errorf("b follows %v caught up, want every partition: those it takes and those a keeps", caught)
		}
		return nil
	})
	gate.restore()

	waitFor(t, 60*time.Second, func() error {
		oa, ob := owned(pa), owned(pb)
		if len(oa) != parts/2 || len(ob) != parts/2 {
			return fmt.Errorf("a runs %v and b runs %v, want %d each", oa, ob, parts/2)
		}
		return nil
	})
	var restored, end int64
	for _, ps := range pb.Stats().Partitions {
		if ps.State == "running" {
			restored += ps.Restored
			end += ps.RestoreEnd
		}
	}
	t.Logf("b took %v over and restored %d changelog records; their changelogs end at offsets summing to %d", owned(pb), restored, end)
	if end < rows/4 || restored != 0 {
		t.Fatalf("b restored %d changelog records of %d for %v, which it followed until it took them over", restored, end, owned(pb))
	}
	emitN(t, em, 400, 100, want)
	expectCounts(t, v, want, 30*time.Second)
	if got, sent := calls.Load(), int64(rows+400); got != sent {
		t.Fatalf("handled %d records, want each of the %d once", got, sent)
	}
}
