package sluice

// A standby is a warm copy of a table partition that the processor does not
// own: the table's reader (reader.go) follows the partition's changelog,
// read committed, into the partition's local store, as it does while a task
// restores, so the store keeps the same rule: each Apply writes rows with
// the checkpoint after them, and the store is never ahead of its
// checkpoint. When the processor is assigned the partition, its task takes
// the open store over and restores only the changelog records after the
// checkpoint.
//
// Invariants:
//   - The group's leader places standbys (internal/kafka/standbys.go); each
//     member learns its own from its assignment, before the assignment
//     callback, which starts and stops standbys to match once the
//     processor's tasks are set.
//   - A partition's store is open at most once: a standby starts only for
//     a partition without a task (a revoked task has closed its store by
//     the time the callback runs), and a task opens its table store through
//     storage, which hands it the standby's store and removes the partition
//     from the reader first.
//   - A standby that has not caught up with its changelog yet may still be
//     loading in chunks (reader.go); its store is closed and opened again
//     rather than handed over, which drops the rows the loader held and
//     keeps the checkpoint of the last chunk it wrote.
//   - Only the callbacks of the group and the end of Run start and stop
//     standbys; mu guards the maps, not the I/O.
//   - A group with a windows topic follows it too, into the same store
//     (windowlog.go), once the table topic has caught up; a copy is ready
//     once both have. A copy's mu orders the windows reader's start with
//     the copy's end, so that no reader writes a store handed over.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/sluice-io/sluice/store"
)

// Standbys makes the processor keep warm copies of n partitions' tables per
// partition across the group: each partition's table is followed, read
// committed, into the local store of up to n processors of the group other
// than its owner, so that when the partition moves to one of them (its
// owner stopped or failed), that processor restores only the changelog
// records its copy had not yet read. The group's balancer places the
// copies, prefers a processor with a warm copy when a partition needs an
// owner, and keeps the most copies any processor asks for; a processor
// with Standbys(0) hosts none. Copies live in the processor's Storage,
// alongside its own partitions, and are counted in Stats.Standbys. It
// needs a table (Persist). Default: 0.
func Standbys(n int) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.standbys = n })
}

// StandbyStatus is one warm copy a processor keeps of a partition it does
// not own.
type StandbyStatus struct {
	Partition int32
	// State is "restoring" until the copy has caught up with the end
	// offset its changelog had when the copy began, then "following".
	State string
	// Offset is the next changelog offset the copy reads; HighWatermark
	// is the changelog's end offset as last fetched, and Behind the
	// records between them.
	Offset, HighWatermark, Behind int64
	// Restored is how many changelog records the copy read until it
	// caught up: 0 when the local store was up to date.
	Restored int64
}

// standbySet is the processor's side of standby placement and its warm
// copies. It implements kafka.Standby for the group's balancer.
type standbySet struct {
	wanted int
	table  string        // the changelog topic
	open   store.Builder // the processor's Storage
	logger *slog.Logger
	reader *tableReader // the table's; set by begin, before the client exists
	// The windows topic's, nil without windows; set by begin.
	winReader *tableReader
	ctx       context.Context // Run's; set by begin

	mu      sync.Mutex
	given   []int32 // by the last assignment
	copies  map[int32]*standbyCopy
	stopped bool // Run is ending: start none
}

type standbyCopy struct {
	st    store.Store
	ready <-chan struct{}

	mu   sync.Mutex
	gone bool          // released or taken: the windows reader must not start
	stop chan struct{} // closed when gone
}

// end stops the copy's readers; it returns once neither writes its store.
func (s *standbySet) end(p int32, c *standbyCopy) {
	s.reader.remove(p)
	if s.winReader == nil {
		return
	}
	c.mu.Lock()
	if !c.gone {
		c.gone = true
		close(c.stop)
	}
	c.mu.Unlock()
	s.winReader.remove(p)
}

// followWindows has the windows reader follow the copy of partition p
// into ws once the table reader has caught up with tableReady, and closes
// ready once it has caught up too.
func (s *standbySet) followWindows(p int32, c *standbyCopy, ws store.Store, tableReady <-chan struct{}, ready chan struct{}) {
	select {
	case <-tableReady:
	case <-c.stop:
		return
	case <-s.ctx.Done():
		return
	}
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	readyOf, err := s.winReader.add(s.ctx, map[int32]store.Store{p: ws})
	c.mu.Unlock()
	if err != nil {
		if s.ctx.Err() == nil {
			s.logger.Warn("cannot follow the windows of a standby; it does not become warm", "partition", p, "err", err)
		}
		return
	}
	select {
	case <-readyOf[p]:
		close(ready)
	case <-c.stop:
	case <-s.ctx.Done():
	}
}

func newStandbySet(wanted int, table string, storage store.Builder, logger *slog.Logger) *standbySet {
	return &standbySet{wanted: wanted, table: table, open: storage, logger: logger.With("table", table), copies: make(map[int32]*standbyCopy)}
}

// begin is called by Run, before the group's client exists, with its
// context and the table's reader.
func (s *standbySet) begin(ctx context.Context, reader, winReader *tableReader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.reader, s.winReader = ctx, reader, winReader
}

// Wanted implements kafka.Standby.
func (s *standbySet) Wanted() int { return s.wanted }

// Warm implements kafka.Standby: the copies that have caught up.
func (s *standbySet) Warm() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var warm []int32
	for p, c := range s.copies {
		select {
		case <-c.ready:
			warm = append(warm, p)
		default:
		}
	}
	slices.Sort(warm)
	return warm
}

// Assigned implements kafka.Standby.
func (s *standbySet) Assigned(standbys []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.given = slices.Clone(standbys)
}

// follow starts and stops copies to match the last assignment, leaving
// alone the partitions the processor owns: their tasks take their copies
// over.
func (s *standbySet) follow(owned map[int32]bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	want := make(map[int32]bool)
	for _, p := range s.given {
		if !owned[p] {
			want[p] = true
		}
	}
	var drop []*standbyCopy
	var dropped []int32
	for p, c := range s.copies {
		if !want[p] && !owned[p] {
			drop = append(drop, c)
			dropped = append(dropped, p)
			delete(s.copies, p)
		}
	}
	var start []int32
	for p := range want {
		if s.copies[p] == nil {
			start = append(start, p)
		}
	}
	s.mu.Unlock()

	for i, c := range drop {
		s.release(dropped[i], c)
	}
	if len(dropped) > 0 {
		s.logger.Info("standbys stopped", "partitions", slices.Sorted(slices.Values(dropped)))
	}
	if len(start) > 0 {
		s.start(slices.Sorted(slices.Values(start)))
	}
}

// start opens the stores of partitions and has the reader follow them. A
// copy that cannot start is logged and left out: the partition restores as
// it would without one, and the next assignment tries again.
func (s *standbySet) start(ps []int32) {
	stores := make(map[int32]store.Store, len(ps))
	sides := make(map[int32]store.Store, len(ps))
	winSides := make(map[int32]store.Store, len(ps))
	for _, p := range ps {
		st, err := s.open(s.table, p)
		if err != nil {
			s.logger.Warn("cannot open the store of a standby; the partition has no warm copy here", "partition", p, "err", err)
			continue
		}
		stores[p], sides[p] = st, st
		if s.winReader != nil {
			sides[p], winSides[p] = splitStore(st)
		}
	}
	if len(stores) == 0 {
		return
	}
	readies, err := s.reader.add(s.ctx, sides)
	if err != nil {
		if s.ctx.Err() == nil {
			s.logger.Warn("cannot follow the changelog of standbys; the partitions have no warm copies here", "partitions", slices.Sorted(maps.Keys(stores)), "err", err)
		}
		for p, st := range stores {
			if cerr := st.Close(); cerr != nil {
				s.logger.Warn("close the store of a standby", "partition", p, "err", cerr)
			}
		}
		return
	}
	s.mu.Lock()
	for p, st := range stores {
		c := &standbyCopy{st: st, ready: readies[p], stop: make(chan struct{})}
		if s.winReader != nil {
			ready := make(chan struct{})
			c.ready = ready
			go s.followWindows(p, c, winSides[p], readies[p], ready)
		}
		s.copies[p] = c
	}
	s.mu.Unlock()
	s.logger.Info("standbys started", "partitions", slices.Sorted(maps.Keys(stores)))
}

// release stops following partition p and closes its store.
func (s *standbySet) release(p int32, c *standbyCopy) {
	s.end(p, c)
	if err := c.st.Close(); err != nil {
		s.logger.Warn("close the store of a standby", "partition", p, "err", err)
	}
}

// take hands the task of partition p the store of its copy, if the copy
// has caught up; nil otherwise.
func (s *standbySet) take(p int32) (store.Store, error) {
	s.mu.Lock()
	c := s.copies[p]
	delete(s.copies, p)
	s.mu.Unlock()
	if c == nil {
		return nil, nil
	}
	offset, _, _, _, _ := s.reader.following(p)
	s.end(p, c)
	select {
	case <-c.ready:
		s.logger.Info("taking over a warm standby", "partition", p, "checkpoint", offset)
		return c.st, nil
	default:
	}
	// It may be loading in chunks; what it wrote so far stays.
	s.logger.Info("taking over a standby that had not caught up", "partition", p, "offset", offset)
	if err := c.st.Close(); err != nil {
		return nil, fmt.Errorf("close the store of standby %d: %w", p, err)
	}
	return nil, nil
}

// storage returns the builder the processor's tasks open their stores
// with: next, except for the table partitions it has copies of.
func (s *standbySet) storage(next store.Builder) store.Builder {
	if s == nil {
		return next
	}
	return func(table string, p int32) (store.Store, error) {
		if table == s.table {
			st, err := s.take(p)
			if err != nil || st != nil {
				return st, err
			}
		}
		return next(table, p)
	}
}

// close stops every copy; none starts afterwards.
func (s *standbySet) close() error {
	s.mu.Lock()
	s.stopped = true
	copies := s.copies
	s.copies = make(map[int32]*standbyCopy)
	s.mu.Unlock()
	var errs []error
	for p, c := range copies {
		s.end(p, c)
		if err := c.st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the store of standby %d: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// stats returns the copies' status, in partition order.
func (s *standbySet) stats() []StandbyStatus {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	ps := slices.Sorted(maps.Keys(s.copies))
	reader := s.reader
	s.mu.Unlock()
	out := make([]StandbyStatus, 0, len(ps))
	for _, p := range ps {
		offset, hwm, restored, ready, ok := reader.following(p)
		if !ok {
			continue
		}
		st := StandbyStatus{Partition: p, State: "restoring", Offset: offset, HighWatermark: hwm, Behind: hwm - offset, Restored: restored}
		if ready {
			st.State = "following"
		}
		out = append(out, st)
	}
	return out
}
