package sluice

// The windows topic: the changelog of a group's window rows, apart from its
// table's, as Kafka Streams keeps a windowed store's. A window that closes
// and is purged gets no tombstone there; the topic is compact,delete, with
// a retention longer than any window lives, so that the broker, not a
// record per key-window, removes what is purged.
//
// Invariants:
//   - The rows under windowSpace and windowPurgeSpace go to the windows
//     topic, every other row to the table topic (engine.endBatch). A row
//     purged (its retention over) writes no record; a row deleted for
//     another reason (a session merged into another) writes a tombstone.
//   - Each aggregation has a purge mark row (windowPurgeSpace + name),
//     written in the windows topic in the batch that purges: every row of
//     the aggregation whose key sorts below the mark is purged. Rows sort
//     by end, and the windows are purged in that order, so the mark only
//     grows.
//   - The store records the offset after the last windows record it
//     holds in a row of its own (windowLogOffsetKey), in the same Apply as
//     the table's checkpoint: the store is ahead of neither topic. The row
//     never goes to a changelog.
//   - A restore reads the table topic, then the windows topic from their
//     checkpoints, in that order: window rows a table topic holds from
//     before the group had a windows topic (every such row was written
//     before any record of the windows topic) are overwritten by newer
//     ones. A purge mark read deletes the rows below it, and a row read
//     below its aggregation's mark is not loaded. The engine purges what is
//     left below a mark (rows of the table topic restored after it) when
//     it loads its windows.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/store"
)

const (
	// windowPurgeSpace begins the keys of the aggregations' purge marks.
	windowPurgeSpace = reservedPrefix + "p"
	// windowLogOffsetKey is the store's row for its windows checkpoint.
	windowLogOffsetKey = reservedPrefix + "o"
)

// DefaultWindowsRetentionMargin is what WindowsRetentionMargin is by
// default: a day, as Kafka Streams adds to a windowed changelog's
// retention (windowstore.changelog.additional.retention.ms).
const DefaultWindowsRetentionMargin = 24 * time.Hour

// WindowsRetentionMargin sets how much longer than its longest window lives
// (its retention: size plus grace by default, see Retention) a group's
// windows topic keeps records, when the processor creates it: retention.ms
// is the longest retention plus d. The broker deletes records by the wall
// clock of their writing, a window by stream time: the margin covers a
// processor that stops or lags behind its input for that long, after
// which a window that got no record meanwhile cannot be restored. It
// changes nothing of a topic that exists, and must not be negative.
// Default: DefaultWindowsRetentionMargin.
func WindowsRetentionMargin(d time.Duration) ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.windowsMargin = d })
}

// windowsRetention is the retention.ms of g's windows topic.
func windowsRetention[V any](g *Group[V], margin time.Duration) time.Duration {
	var longest time.Duration
	for _, a := range g.windows {
		longest = max(longest, a.w.retentionOf())
	}
	return longest + max(margin, 0)
}

// windowsTopicSpec is how a processor creates g's windows topic.
func windowsTopicSpec[V any](g *Group[V], margin time.Duration, partitions int32, replication int16) kafka.TopicSpec {
	return kafka.TopicSpec{Name: g.WindowsTopic(), Partitions: partitions, Replication: replication, Configs: map[string]string{
		"cleanup.policy": "compact,delete",
		"retention.ms":   strconv.FormatInt(windowsRetention(g, margin).Milliseconds(), 10),
	}}
}

// windowLogKey reports whether the row of key goes to the windows topic.
func windowLogKey(key string) bool {
	return strings.HasPrefix(key, windowSpace) || strings.HasPrefix(key, windowPurgeSpace)
}

// windowsCheckpoint is the store change that records end as the windows
// checkpoint.
func windowsCheckpoint(end int64) store.Change {
	return store.Change{Key: []byte(windowLogOffsetKey), Value: binary.BigEndian.AppendUint64(nil, uint64(end))}
}

// windowsOffset reads the windows checkpoint of st, -1 if it has none.
func windowsOffset(st store.Store) (int64, error) {
	v, err := st.Get([]byte(windowLogOffsetKey))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return -1, nil
	case err != nil:
		return 0, fmt.Errorf("read windows checkpoint: %w", err)
	case len(v) != 8:
		return 0, fmt.Errorf("windows checkpoint is %d bytes, want 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// writePurgeMark writes the purge mark of aggregation a that its purges
// since the last one moved, with a windows topic only: a table topic gets
// a tombstone per window.
func (e *engine[V]) writePurgeMark(a *windowAgg[V], st *aggWindows) error {
	if st.purgedTo == "" && st.purgedThrough == "" {
		return nil
	}
	mark := []byte(st.purgedTo)
	if st.purgedThrough != "" && st.purgedThrough >= st.purgedTo {
		mark = append([]byte(st.purgedThrough), 0)
	}
	st.purgedTo, st.purgedThrough = "", ""
	if e.winTopic == "" {
		return nil
	}
	var zero V
	return e.setRaw(windowPurgeSpace+a.name, mark, true, zero, false)
}

// purgeRange keeps, for the purge mark key set to mark, the range of the
// rows it purges, to delete in the store with the batch: the purged rows
// have no change of their own there when the store deletes ranges.
func (e *engine[V]) purgeRange(key string, mark []byte) {
	name, ok := strings.CutPrefix(key, windowPurgeSpace)
	if !ok || e.ranges == nil || mark == nil {
		return
	}
	lo, _ := aggRange(name)
	e.pendingRanges = append(e.pendingRanges, store.Range{Lo: lo, Hi: mark})
}

// purgeBelowMark purges the rows of aggregation a below its purge mark
// that the store holds: rows a restore read from the table topic after
// the windows topic's mark, which no tombstone removes.
func (e *engine[V]) purgeBelowMark(a *windowAgg[V]) error {
	if e.winTopic == "" {
		return nil
	}
	mark, ok, err := e.getRaw(windowPurgeSpace + a.name)
	if err != nil {
		return fmt.Errorf("group %s: partition %d: read purge mark of %q: %w", e.cfg.group.name, e.partition, a.name, err)
	}
	if !ok {
		return nil
	}
	lo, _ := aggRange(a.name)
	left, _, err := e.liveWindows(lo, mark, mark, false)
	if err != nil {
		return err
	}
	if len(left) == 0 {
		return nil
	}
	for _, k := range left {
		e.deleteWindowRow(k)
	}
	// Written again, so that the batch deletes its range.
	var zero V
	mk := windowPurgeSpace + a.name
	r, held := e.rows.peek(mk)
	e.writeRow(mk, r, held, mark, true, zero, false)
	return nil
}

// restoreWindows restores the windows side of the task's store from the
// windows topic once the table's restore is ready.
func (t *task[V]) restoreWindows(ctx context.Context, tableReady <-chan struct{}, windowsSide store.Store) error {
	h := t.h
	if err := h.restore.waitReady(ctx, tableReady); err != nil {
		return err
	}
	readyOf, err := h.winRestore.add(ctx, map[int32]store.Store{t.partition: windowsSide})
	if err != nil {
		return fmt.Errorf("restore windows: %w", err)
	}
	return h.winRestore.waitReady(ctx, readyOf[t.partition])
}

// windowLogStore is the side of a task's store that the windows topic's
// reader restores: its checkpoint is the windows checkpoint, and it writes
// the table's checkpoint as it finds it. mu orders its Apply calls with
// those of the table's side, which runs on another reader's goroutine.
type windowLogStore struct {
	store.Store
	mu *sync.Mutex
	// Purge marks read so far, by aggregation, with their key ranges.
	marks map[string]string
}

// tableLogStore is the side of a task's store that the table topic's
// reader restores, holding mu while it writes so that the windows side
// never records a table checkpoint older than the store's rows.
type tableLogStore struct {
	store.Store
	mu *sync.Mutex
}

// splitStore returns the two sides of st that the table's and the
// windows' readers restore. Neither side bulk loads: a loader takes the
// store for itself, and both readers may write it at once (a standby).
func splitStore(st store.Store) (table, windows store.Store) {
	mu := new(sync.Mutex)
	return &tableLogStore{Store: st, mu: mu}, &windowLogStore{Store: st, mu: mu, marks: make(map[string]string)}
}

// Flush passes a flush on to a store that can, as the reader asks of a
// store it restored.
func (s *tableLogStore) Flush() error { return flushStore(s.Store) }

// Flush is tableLogStore's.
func (s *windowLogStore) Flush() error { return flushStore(s.Store) }

func flushStore(st store.Store) error {
	if f, ok := st.(store.Flusher); ok {
		return f.Flush()
	}
	return nil
}

func (s *tableLogStore) Apply(changes []store.Change, offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store.Apply(changes, offset)
}

func (s *tableLogStore) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store.Clear()
}

// Offset returns the windows checkpoint.
func (s *windowLogStore) Offset() (int64, error) { return windowsOffset(s.Store) }

// Apply writes the window rows of the windows topic with offset as the
// windows checkpoint, leaving the table's as it is. A purge mark deletes
// the rows below it the store holds, and a row below its aggregation's
// mark becomes a delete: it is purged, and the store may hold an older
// value of it.
func (s *windowLogStore) Apply(changes []store.Change, offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Change, 0, len(changes)+1)
	rd, _ := s.Store.(store.RangeDeleter)
	var ranges []store.Range
	for _, c := range changes {
		k := string(c.Key)
		if name, ok := strings.CutPrefix(k, windowPurgeSpace); ok && c.Value != nil {
			if rd != nil {
				lo, _ := aggRange(name)
				ranges = append(ranges, store.Range{Lo: lo, Hi: c.Value})
				s.marks[name] = string(c.Value)
			} else {
				purged, err := s.purged(name, string(c.Value))
				if err != nil {
					return err
				}
				out = append(out, purged...)
			}
		}
		out = append(out, c)
	}
	// Rows of the chunk come before the marks that purge them.
	for i, c := range out {
		if name, ok := aggregationOf(string(c.Key)); ok && c.Value != nil && string(c.Key) < s.mark(name) {
			out[i] = store.Change{Key: c.Key}
		}
	}
	out = append(out, windowsCheckpoint(offset))
	table, err := s.Store.Offset()
	if err != nil {
		return err
	}
	if len(ranges) > 0 {
		return rd.ApplyRanges(out, ranges, table)
	}
	return s.Store.Apply(out, table)
}

// mark returns the purge mark of aggregation name the store holds, ""
// if none.
func (s *windowLogStore) mark(name string) string {
	if m, ok := s.marks[name]; ok {
		return m
	}
	v, err := s.Store.Get([]byte(windowPurgeSpace + name))
	if err != nil {
		v = nil // no mark, or read again with the next row
	} else {
		s.marks[name] = string(v)
	}
	return string(v)
}

// purged moves the purge mark of aggregation name to mark and returns
// the deletes of the rows the store holds below it.
func (s *windowLogStore) purged(name, mark string) ([]store.Change, error) {
	lo, _ := aggRange(name)
	from := max(string(lo), s.mark(name))
	s.marks[name] = mark
	if from >= mark {
		return nil, nil
	}
	it, err := s.Store.Iter([]byte(from), []byte(mark))
	if err != nil {
		return nil, fmt.Errorf("purge windows of %q: %w", name, err)
	}
	var dels []store.Change
	for it.Next() {
		dels = append(dels, store.Change{Key: append([]byte(nil), it.Key()...)})
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, fmt.Errorf("purge windows of %q: %w", name, err)
	}
	return dels, nil
}

// Clear removes the window rows, the purge marks and the windows
// checkpoint, for a windows topic that holds less than the store has seen
// (recreated): the table's rows stay.
func (s *windowLogStore) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.marks)
	var dels []store.Change
	for _, space := range []string{windowSpace, windowPurgeSpace} {
		lo := []byte(space)
		hi := append([]byte(space[:len(space)-1]), space[len(space)-1]+1)
		it, err := s.Store.Iter(lo, hi)
		if err != nil {
			return err
		}
		for it.Next() {
			dels = append(dels, store.Change{Key: append([]byte(nil), it.Key()...)})
		}
		if err := errors.Join(it.Err(), it.Close()); err != nil {
			return err
		}
	}
	dels = append(dels, store.Change{Key: []byte(windowLogOffsetKey)})
	table, err := s.Store.Offset()
	if err != nil {
		return err
	}
	return s.Store.Apply(dels, table)
}

// aggregationOf returns the aggregation of the window row key k.
func aggregationOf(k string) (string, bool) {
	rest, ok := strings.CutPrefix(k, windowSpace)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "\x00")
	return name, ok
}
