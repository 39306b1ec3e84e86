package sluice

// The partition engine's windows: how records are folded into them, and
// how they close and are purged as stream time moves. Their rows' keys and
// the scan for the live ones are in windowrows.go, what the engine keeps
// of them besides the row cache in windowcache.go.
//
// Invariants:
//   - A window of a key is one row of the group's table (windowRowKey), its
//     aggregate encoded with the aggregator's codec, so it is written to the
//     changelog with the batch, undone with a failed record, restored and
//     moved with its partition like every row. Rows sort by aggregation and
//     then by end, so the windows a stream time closes or purges are a
//     prefix of the aggregation's range.
//   - Each aggregation has a cursor row (windowCursorSpace + name) holding
//     the key of the last window it closed: the windows at or before the
//     cursor have had their final result, those after it have not. The
//     cursor moves in the batch that hands out the final result, so each
//     window gets exactly one, also across a restart, under exactly once.
//   - A window is open while stream time is before its end plus grace. Add
//     never writes to a closed window, retained or not: a record whose
//     windows have all closed fails as late.
//   - The store holds the windows of the applied batches; window rows made
//     since are in unapplied or written, so a scan of the store and of them,
//     filtered through the rows the engine holds, finds every live window,
//     as for timers.
//   - A window that ends after its aggregation's storeEnd had no row in
//     the store when the engine last loaded it, so a row of it is in the
//     store only if the engine made it since, and the engine holds that
//     row until the row cache lets it go, clean: released holds every such
//     row the cache let go of (and maybe some deleted since), and a row of
//     such a window neither held nor in released does not exist, with no
//     read of the store. Load finds storeEnd again from the store after an
//     aborted batch, and raising it is always safe: released is bounded
//     that way.
//   - An aggregate kept decoded (decoded) is its row's while the row
//     holds the bytes it was encoded to, which are never modified: a
//     record that failed, a read of the store or any other change gives
//     the row other bytes. A fold takes it out before it may change it.
//     So undoing a record needs no copy of a decoded aggregate, and an
//     aggregate is decoded once for the records a batch folds into it.
//   - next is never later than the earliest stream time at which a window
//     closes or is purged, so a record before it costs a compare.
//   - What differs between kinds of windows is in windowkind.go (which
//     windows a time falls in, when a window closes and when it is purged)
//     and in addToWindows' choice of the windows a record goes into; the
//     rest is the same for every kind.

import (
	"fmt"
	"math"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kgo"
)

// windowCursorSpace begins the keys of the aggregations' cursor rows.
const windowCursorSpace = reservedPrefix + "c"

// windowState is what an engine of a group with windows keeps of them.
type windowState struct {
	aggs []aggWindows
	// The keys of the window rows made since the store was last updated:
	// by the batch in hand (unapplied) and by the batches written since
	// (written). A key may be in them more than once, made again after
	// a failed record undid it: appending is what a record pays, and
	// liveWindows, which reads them, drops the repeats.
	unapplied, written []string
	// Rows of open windows that end after their aggregation's storeEnd
	// that the row cache let go of since the last load; at most
	// releasedLimit.
	released      map[string]struct{}
	releasedLimit int
	// The earliest stream time at which a window may close or be purged.
	next   int64
	loaded bool
	// Open windows of the partition, counted at load and kept since.
	open int64
	buf  []span
	// keyBuf is where a fold builds the key of its window row.
	keyBuf []byte
	// rec is the record a final result is handed out with, one for
	// every window: a handler sees its fields, not the record.
	rec kgo.Record
	// The aggregates of window rows the batch folded into, decoded, by
	// row key, for the aggregations whose aggregates are worth keeping;
	// at most maxDecoded.
	decoded map[string]decodedAggregate
}

// aggWindows is what the engine keeps of one aggregation's windows: the
// earliest stream times a window of it may close and be purged at.
type aggWindows struct {
	nextClose, nextPurge int64
	// The latest end of a window that may have rows in the store the
	// engine did not make since it loaded them.
	storeEnd int64
	// The last window closeDue closed, that the cursor row is to move
	// to when it returns; "" if none.
	closed string
	// The purge mark to write (windowlog.go): every row of the
	// aggregation below purgedTo, and up to purgedThrough, is purged;
	// "" if none to write. A window closed and purged at once sets
	// purgedThrough to its own key, which costs nothing.
	purgedTo, purgedThrough string
}

// minReleased is the least number of rows released holds, whatever the
// row cache's size.
const minReleased = 4096

// newWindowState makes the window state of an engine with n aggregations
// and a row cache of cacheRows rows. released holds up to as many rows as
// the cache, an entry costing less than a cached row, and at least
// minReleased.
func newWindowState(n, cacheRows int) *windowState {
	ws := &windowState{aggs: make([]aggWindows, n), decoded: make(map[string]decodedAggregate), released: make(map[string]struct{}), releasedLimit: max(cacheRows, minReleased), next: math.MinInt64}
	for i := range ws.aggs {
		ws.aggs[i].storeEnd = math.MaxInt64
	}
	return ws
}

// loadWindows forgets where the next windows close and counts the open
// ones, before the first record or tick and after a discarded batch.
func (e *engine[V]) loadWindows() error {
	ws := e.win
	if ws == nil {
		return nil
	}
	ws.open = 0
	clear(ws.released)
	for i, a := range e.cfg.group.windows {
		ws.aggs[i] = aggWindows{nextClose: math.MinInt64, nextPurge: math.MinInt64, storeEnd: math.MaxInt64} // found by the first scan
		from, limit, err := e.openFrom(a.name)
		if err != nil {
			return err
		}
		open, _, err := e.liveWindows(from, limit, limit, false)
		if err != nil {
			return err
		}
		ws.open += int64(len(open))
		// The rows in the store are the open ones, the latest last, and
		// the closed ones, which end no later than the cursor's window.
		end := int64(math.MinInt64)
		if len(open) > 0 {
			_, s, _ := parseSpanKey(open[len(open)-1])
			end = s.end
		}
		if _, s, ok := parseSpanKey(string(from)); ok {
			end = max(end, s.end)
		}
		ws.aggs[i].storeEnd = end
		if err := e.purgeBelowMark(a); err != nil {
			return err
		}
	}
	ws.next = math.MinInt64
	ws.loaded = true
	e.m.openWindows.Store(ws.open)
	return nil
}

// addToWindows folds a message at p into the open windows of key of the
// aggregation index, with fold, which gets the window's encoded aggregate
// (ok false for a new window) and returns the new one. It fails with a
// *LateError if every window of p has closed. Which windows a record goes
// into is the kind's choice: the place for the kinds whose windows depend
// on the key's other windows.
func (e *engine[V]) addToWindows(owner any, index int, key string, p Point, fold windowFold) error {
	aggs := e.cfg.group.windows
	if e.win == nil || index < 0 || index >= len(aggs) || aggs[index].owner != owner {
		return fmt.Errorf("group %s does not declare this windowed aggregation (its handle belongs to another group)", e.cfg.group.name)
	}
	a := aggs[index]
	switch a.w.kind {
	case tumblingWindows, hoppingWindows:
		return e.addToFixedWindows(a, index, key, p, fold)
	case sessionWindows:
		return e.addToSession(a, index, key, p, fold)
	case slidingWindows:
		return e.addToSliding(a, index, key, p, fold)
	default:
		return fmt.Errorf("window %q: %s windows are not supported", a.name, a.w.kind)
	}
}

// addToFixedWindows folds into the open windows of key that hold p's
// time, for the kinds whose windows are fixed by time alone.
func (e *engine[V]) addToFixedWindows(a *windowAgg[V], index int, key string, p Point, fold windowFold) error {
	ws := e.win
	// Taken from buf while it folds: a handler of updates that adds
	// again gets a buf of its own.
	spans := a.w.windowsAt(p.Time.UnixNano(), ws.buf[:0])
	ws.buf = nil
	added := 0
	for _, s := range spans {
		if e.stream >= a.w.closesAt(s.end) {
			continue // closed, retained or not
		}
		if err := e.foldWindow(a, index, key, s, fold); err != nil {
			ws.buf = spans[:0]
			return err
		}
		added++
	}
	ws.buf = spans[:0]
	if added == 0 {
		return &LateError{Aggregation: a.name, Time: p.Time, StreamTime: e.streamTime()}
	}
	return nil
}

// foldWindow folds into the window s of key, and hands the update to the
// handler if the aggregation emits updates.
func (e *engine[V]) foldWindow(a *windowAgg[V], index int, key string, s span, fold windowFold) error {
	ws := e.win
	st := &ws.aggs[index]
	// The key is made only for a row the engine does not hold.
	ws.keyBuf = appendSpanKey(ws.keyBuf[:0], a.name, key, s)
	r, held := e.rows.heldWindow(ws.keyBuf)
	var k string
	if held {
		k = r.key
	} else {
		k = string(ws.keyBuf)
		if _, released := ws.released[k]; released || !ws.loaded || s.end <= st.storeEnd {
			// It may be in the store; if not, it is new (see the
			// invariants).
			var err error
			if r, err = e.load(k); err != nil {
				return err
			}
			held = true
		}
	}
	var raw []byte
	var kept any
	ok := held && r.exists
	if ok {
		raw = r.raw
		kept = ws.takeDecoded(k, raw)
	}
	// fold runs the aggregator, which cannot reach the rows: r stays
	// the row of k.
	raw, v, err := fold.fold(raw, ok, kept)
	if err != nil {
		return err
	}
	var zero V
	if nr := e.setRow(k, r, held, raw, true, zero, false); !held {
		nr.absent = true // see the invariants
	}
	if v != nil && len(ws.decoded) < maxDecoded {
		ws.decoded[k] = decodedAggregate{raw: raw, v: v}
	}
	if !ok {
		ws.unapplied = append(ws.unapplied, k)
		ws.open++
		at := a.w.closesAt(s.end)
		st.nextClose = min(st.nextClose, at)
		ws.next = min(ws.next, at)
	}
	if !a.w.updates {
		return nil
	}
	if err := e.callResult(a, key, s.window(), raw, false); err != nil {
		return err
	}
	e.cfg.metrics.windowResult(false)
	return nil
}

// callResult runs the aggregation's handler, turning a panic into an
// error.
func (e *engine[V]) callResult(a *windowAgg[V], key string, w Window, raw []byte, final bool) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return a.result(&e.ctx, key, w, raw, final)
}

// closeWindows closes the windows stream time has reached the close of,
// and purges those it has reached the purge time of.
func (e *engine[V]) closeWindows() error {
	ws := e.win
	if e.stream == noStreamTime || !ws.loaded {
		return nil
	}
	next := int64(math.MaxInt64)
	for i, a := range e.cfg.group.windows {
		st := &ws.aggs[i]
		if e.stream >= st.nextClose {
			if err := e.closeDue(a, st); err != nil {
				ws.next = math.MinInt64 // what failed is tried again
				return err
			}
		}
		if e.stream >= st.nextPurge {
			if err := e.purgeDue(a, st); err != nil {
				ws.next = math.MinInt64
				return err
			}
		}
		next = min(next, st.nextClose, st.nextPurge)
	}
	ws.next = next
	return nil
}

// closeDue hands out the final results of aggregation a's windows that
// stream time closes, in order of end. It moves the cursor once, when it
// returns, to the last window it closed: no record runs meanwhile, and a
// window that fails leaves the cursor where the windows before it put it.
func (e *engine[V]) closeDue(a *windowAgg[V], st *aggWindows) (err error) {
	defer func() {
		if st.closed == "" {
			return
		}
		var zero V
		cerr := e.setRaw(windowCursorSpace+a.name, []byte(st.closed), true, zero, false)
		st.closed = ""
		if merr := e.writePurgeMark(a, st); cerr == nil {
			cerr = merr
		}
		clear(e.undo)
		if err == nil {
			err = cerr
		}
	}()
	from, limit, err := e.openFrom(a.name)
	if err != nil {
		return err
	}
	_, hi := windowRange(a.name, a.w.closedBelow(e.stream))
	due, next, err := e.liveWindows(from, hi, limit, true)
	if err != nil {
		return err
	}
	st.nextClose = math.MaxInt64
	if _, s, ok := parseSpanKey(next); ok {
		st.nextClose = a.w.closesAt(s.end)
	}
	for _, k := range due {
		if err := e.closeWindow(a, st, k); err != nil {
			st.nextClose = math.MinInt64
			return err
		}
	}
	return nil
}

// closeWindow hands the final result of the window row k to the handler,
// as a record is handled: its effects are undone if it fails, and the
// error policy applies. Under Fail the window stays open, to close again
// when the partition restarts; skipped or dead-lettered, it is closed.
func (e *engine[V]) closeWindow(a *windowAgg[V], st *aggWindows, k string) error {
	raw, ok, err := e.closingRaw(k)
	if err != nil || !ok {
		return err
	}
	key, s, _ := parseSpanKey(k)
	w := s.window()
	c := &e.ctx
	if c.ctx == nil {
		c.ctx = e.baseCtx
	}
	// The key is the record's own: emits share it.
	rec := &e.win.rec
	*rec = kgo.Record{Partition: e.partition, Offset: -1, Key: []byte(key), Value: raw, Timestamp: w.End}
	c.rec, c.key, c.err, c.at = rec, key, nil, w.End
	clearUndo(e.undo)
	e.recordDirty = len(e.dirty)
	emitted := len(e.out)
	err = e.callResult(a, key, w, raw, true)
	if err == nil {
		err = c.err
	}
	if err == nil {
		e.cfg.metrics.windowResult(true)
		err = e.windowClosed(a, st, k, s)
		clearUndo(e.undo)
		return err
	}
	clear(e.out[emitted:])
	e.out = e.out[:emitted]
	e.undoRecord()
	clear(e.undo)
	werr := &WindowError{Group: e.cfg.group.name, Partition: e.partition, Aggregation: a.name, Key: key, Window: w, Err: err,
		closedEnd: a.w.kind == sessionWindows || a.w.kind == slidingWindows}
	e.cfg.metrics.recordFailed(e.partition, e.cfg.policy.kind, werr)
	if e.cfg.policy.kind == failPolicy {
		return werr
	}
	e.recordDirty = len(e.dirty)
	if cerr := e.windowClosed(a, st, k, s); cerr != nil {
		return cerr
	}
	clear(e.undo)
	failed := *rec // the next window reuses rec
	return e.onFailure([]*kgo.Record{&failed}, werr)
}

// windowClosed moves the aggregation's cursor to the window row k, which
// has closed (closeDue writes it), and purges it if its retention is over.
func (e *engine[V]) windowClosed(a *windowAgg[V], st *aggWindows, k string, s span) error {
	st.closed = k
	e.win.open--
	if len(e.win.released) > 0 {
		delete(e.win.released, k) // no record writes to it again
	}
	if len(e.win.decoded) > 0 {
		delete(e.win.decoded, k)
	}
	if a.w.kind == sessionWindows {
		if err := e.sessionClosed(a, k, s); err != nil {
			return err
		}
	}
	if at := a.w.purgedAt(s.end); e.stream < at {
		st.nextPurge = min(st.nextPurge, at)
		return nil
	}
	e.cfg.metrics.windowsPurged.Add(1)
	e.deleteWindowRow(k)
	st.purgedThrough = k // every row up to k is purged (see purgeMark)
	return nil
}

// purgeDue deletes aggregation a's closed windows whose retention stream
// time has passed: with a windows topic, the purge mark it writes covers
// them; in a table topic, each gets a tombstone.
func (e *engine[V]) purgeDue(a *windowAgg[V], st *aggWindows) error {
	st.nextPurge = math.MaxInt64
	if a.w.purgedAtClose() {
		return nil // purged as they closed
	}
	lo, limit := aggRange(a.name)
	from, _, err := e.openFrom(a.name)
	if err != nil {
		return err
	}
	// Closed windows only: those up to the cursor.
	_, hi := windowRange(a.name, a.w.purgedBelow(e.stream))
	if string(from) < string(hi) {
		hi = from
	}
	due, next, err := e.liveWindows(lo, hi, limit, false)
	if err != nil {
		return err
	}
	if _, s, ok := parseSpanKey(next); ok && next < string(from) {
		st.nextPurge = a.w.purgedAt(s.end)
	}
	for _, k := range due {
		e.deleteWindowRow(k)
		e.cfg.metrics.windowsPurged.Add(1)
		if a.w.kind == slidingWindows {
			if err := e.slidingPurged(a, k); err != nil {
				return err
			}
		}
	}
	if len(due) > 0 {
		st.purgedTo = string(hi) // every row below hi is purged now
	}
	err = e.writePurgeMark(a, st)
	clear(e.undo)
	return err
}
