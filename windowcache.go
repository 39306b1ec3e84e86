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
// closing. A row the engine holds stays where it is in the row cache: it
// is about to be deleted, and made the most recently used it would push
// out the rows of the open windows.
func (e *engine[V]) closingRaw(k string) ([]byte, bool, error) {
	if r, held := e.rows.peek(k); held {
		return r.raw, r.exists, nil
	}
	return e.getRaw(k)
}

// deleteWindowRow deletes the window row k, which has closed, leaving it
// where it is in the row cache (see closingRaw). Nothing undoes a purge:
// a final result's handler has succeeded, or its failure was undone,
// before its window is purged.
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
	clear(e.win.written)
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
	for k := range ws.unapplied {
		ws.written[k] = struct{}{}
	}
	clear(ws.unapplied)
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
	clear(e.win.unapplied)
	clear(e.win.written)
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
