package sluice

// What an engine keeps of its windows' rows besides the row cache: the
// rows of open windows the cache let go of, the aggregates it keeps
// decoded, and how both follow the batch and the records that fail (the
// invariants are those of enginewindow.go).

import (
	"math"
	"strings"
)

// decodedAggregate is the aggregate raw of a window row, decoded.
type decodedAggregate struct {
	raw []byte
	v   any
}

// maxDecoded is the most aggregates an engine keeps decoded.
const maxDecoded = 1024

// takeDecoded returns the aggregate raw, the bytes of the row k, decoded,
// if it is kept, and forgets it: the fold that gets it may change it, and
// a fold that fails leaves the row as it was. An aggregate of other bytes
// is of what the row was before a failed record changed it, or the row
// was read again: it is not the row's. The bytes of a row are replaced,
// never modified, so the same bytes are the same row.
func (ws *windowState) takeDecoded(k string, raw []byte) any {
	if len(ws.decoded) == 0 {
		return nil
	}
	d, ok := ws.decoded[k]
	if !ok {
		return nil
	}
	delete(ws.decoded, k)
	if len(d.raw) != len(raw) || len(raw) == 0 || &d.raw[0] != &raw[0] {
		return nil
	}
	return d.v
}

// closingRaw returns the encoded aggregate of the window row k, which is
// closing.
func (e *engine[V]) closingRaw(k string) ([]byte, bool, error) {
	if r, held := e.rows.peek(k); held {
		return r.raw, r.exists, nil
	}
	return e.getRaw(k)
}

// deleteWindowRow deletes the window row k, which has closed. Nothing
// undoes a purge: a final result's handler has succeeded, or its failure
// was undone, before its window is purged.
func (e *engine[V]) deleteWindowRow(k string) {
	var zero V
	r, held := e.rows.peek(k)
	e.writeRow(k, r, held, nil, false, zero, false).purged = true
}

// clearUndo clears the undo log u, which is most often empty.
func clearUndo[V any](u map[string]undoEntry[V]) {
	if len(u) > 0 {
		clear(u)
	}
}

// windowsApplied forgets the window rows the store now holds.
func (e *engine[V]) windowsApplied() {
	if e.win == nil {
		return
	}
	if len(e.win.decoded) > 0 {
		clear(e.win.decoded) // kept for a batch
	}
	// The written ones; those made since are the next batch's.
	e.win.written = clearKeys(e.win.written)
}

// windowsWritten hands the window rows the batch made to the write they
// are in: they are in the store once it is applied, which drops them all
// at once, whatever the rows made since.
func (e *engine[V]) windowsWritten() {
	ws := e.win
	if ws == nil || len(ws.unapplied) == 0 {
		return
	}
	if len(ws.written) == 0 {
		ws.written, ws.unapplied = ws.unapplied, ws.written
		return
	}
	// Batches of one transaction, applied when it commits.
	ws.written = append(ws.written, ws.unapplied...)
	ws.unapplied = clearKeys(ws.unapplied)
}

// keptKeys is the most room for keys that unapplied and written keep
// once emptied: the steady state's batches make fewer windows than that,
// and a larger batch's room is not held by every partition for good.
const keptKeys = 16384

// clearKeys empties keys, keeping its room unless it is larger than
// keptKeys.
func clearKeys(keys []string) []string {
	if cap(keys) > keptKeys {
		return nil
	}
	clear(keys)
	return keys[:0]
}

// windowRowReleased keeps in released the row r of key, which the row
// cache let go of, if it is the row of a window that a record may write
// to and no read of the store would find otherwise (see the invariants).
func (e *engine[V]) windowRowReleased(key string, r *row[V]) {
	ws := e.win
	if !r.exists || !ws.loaded || !strings.HasPrefix(key, windowSpace) {
		return
	}
	name, _, w, ok := parseWindowRowKey(key)
	if !ok {
		return
	}
	for i, a := range e.cfg.group.windows {
		if a.name != name {
			continue
		}
		st := &ws.aggs[i]
		end := w.End.UnixNano()
		switch {
		case a.w.kind != tumblingWindows && a.w.kind != hoppingWindows:
			// Only their folds skip the store.
		case end <= st.storeEnd || e.stream >= a.w.closesAt(end):
			// Read from the store if need be, or closed.
		case len(ws.released) < ws.releasedLimit:
			ws.released[key] = struct{}{}
		default:
			st.storeEnd = end
		}
		return
	}
}

// windowsDiscarded goes back to the store's windows.
func (e *engine[V]) windowsDiscarded() {
	if e.win == nil {
		return
	}
	e.win.unapplied = clearKeys(e.win.unapplied)
	e.win.written = clearKeys(e.win.written)
	clear(e.win.decoded)
	e.win.loaded = false
	e.win.next = math.MinInt64
}

// windowUndone keeps the count of open windows when a failed record's
// changes to the row of key are undone: u is the row before the record,
// which may have made a window (a new one) or deleted one (a session it
// merged into another).
func (e *engine[V]) windowUndone(key string, u undoEntry[V], now *row[V]) {
	if e.win == nil || !strings.HasPrefix(key, windowSpace) {
		return
	}
	was := u.held && u.row.exists
	switch {
	case now.exists && !was:
		e.win.open--
	case !now.exists && was:
		e.win.open++
	}
}

// windowRows holds an engine's window rows, apart from the rows of its
// table: a window row is made by one record, changed by a few more and
// deleted when its window closes, so that in an LRU each cost an entry
// added, moved and evicted, and each closed window's row pushed an open
// one out. Here a row is a map entry, dropped as soon as the store holds
// its deletion. Once the store holds a batch's rows, past limit rows clean
// ones (the store's) are let go of, in no particular order, down to three
// quarters of limit: then no caller holds a row, which an LRU ensures by
// letting go of the least recently used. Rows a batch changed are held,
// however many, until the store has them.
type windowRows[V any] struct {
	m     map[string]*row[V]
	limit int
}

// newWindowRows returns the window rows of an engine that holds up to
// limit clean ones between batches.
func newWindowRows[V any](limit int) *windowRows[V] {
	return &windowRows[V]{m: make(map[string]*row[V]), limit: limit}
}

// holds reports whether the row of key is a window row, held here.
func (w *windowRows[V]) holds(key string) bool {
	return w != nil && strings.HasPrefix(key, windowSpace)
}

// settled forgets the row r of key, clean again, if it does not exist:
// the store holds its deletion, and nothing needs the row in memory to
// tell it is not there.
func (w *windowRows[V]) settled(key string, r *row[V]) {
	if !r.exists {
		delete(w.m, key)
	}
}

// applied lets go of clean rows past limit, now that the store holds the
// batches' rows, each told to released (if set) as the row cache tells
// its own.
func (w *windowRows[V]) applied(released func(string, *row[V])) {
	if w == nil || len(w.m) <= w.limit {
		return
	}
	keep := w.limit * 3 / 4
	for k, r := range w.m {
		if len(w.m) <= keep {
			return
		}
		if r.pinned() {
			continue
		}
		delete(w.m, k)
		if released != nil {
			released(k, r)
		}
	}
}
