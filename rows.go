package sluice

// The rows of a partition engine's table, as the engine holds them in
// memory in front of its store.
//
// Invariants:
//   - A row's encoded value is what counts: SetValue encodes at once, so a
//     value the codec rejects fails the record that set it, under the error
//     policy, and the batch writes the bytes it holds. The bytes of a row
//     are never modified, only replaced, so undoing a record restores them
//     by copying the row.
//   - A handler never holds a value that is part of a row. Value decodes the
//     row's bytes anew, except for row types that hold no references (no
//     maps, slices, pointers, interfaces, channels or functions), whose
//     decoded value is kept with the row and handed out as a copy.
//   - Rows changed by the batch in hand (dirty) or written to the changelog
//     and not yet applied to the store (pending) are pinned: they stay in
//     memory, however many, until the store holds them. The cache holds at
//     most CacheRows rows and evicts the least recently used; a pinned row
//     it evicts moves to the evicted map, and leaves it once the store
//     holds it. So rows move only when the cache is full, not with every
//     batch, and only clean rows, equal to the store's, are ever dropped.
//     Window rows are held apart, up to CacheRows clean ones between
//     batches (windowRows, windowcache.go).
//   - The rows of timers that a batch changes are held only while pinned,
//     outside the LRU: the engine finds its timers in its timer index, and
//     their clean rows, several per timer set, would push the table's rows
//     and open windows out of the cache.

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/sluice-io/sluice/store"
)

// row is a table row as the engine sees it.
type row[V any] struct {
	// key is the row's key, the string the cache holds it by, so that a
	// lookup by bytes (heldWindow) finds it without making another.
	key     string
	raw     []byte // the encoded value; nil when the row does not exist
	val     V      // raw decoded, when hasVal; only for value-safe types
	hasVal  bool
	exists  bool
	dirty   bool // changed by the batch in hand
	pending bool // written to the changelog, not yet to the store
	// pendingAt is, while pending, where the engine's pending changes
	// hold the row's latest, which a later batch's change replaces.
	pendingAt int
	// absent: the row did not exist when the batch in hand first changed
	// it, neither in the store nor in a pending changelog record, so if
	// the batch deletes it there is nothing to write.
	absent bool
	// purged: a window row deleted as its window's retention ended, which
	// needs no record in a windows topic (windowlog.go).
	purged bool
}

func (r *row[V]) pinned() bool { return r.dirty || r.pending }

// undoEntry is a row as it was before the record being processed changed
// it; held is false when the engine did not hold the row.
type undoEntry[V any] struct {
	row  row[V]
	held bool
}

// rowCache is where an engine holds rows in memory.
type rowCache[V any] struct {
	lru     *simplelru.LRU[string, *row[V]]
	evicted map[string]*row[V] // pinned rows the LRU let go of, or never held (hold)
	// pendingKeys are the keys of the rows written to the changelog since
	// the store was last updated, in the order they were written, and
	// pendingRows those rows: pinned, so the ones held.
	pendingKeys []string
	pendingRows []*row[V]
	// byValue is whether a decoded V may be kept and handed out as a copy.
	byValue bool
	// released, if set, is told of each row that leaves memory clean,
	// the store's.
	released *func(key string, r *row[V])
	// win holds the window rows apart from lru, for a group with
	// windows (windowcache.go); nil otherwise.
	win *windowRows[V]
}

func newRowCache[V any](size int, byValue bool) rowCache[V] {
	evicted := make(map[string]*row[V])
	released := new(func(string, *row[V]))
	lru, err := simplelru.NewLRU(size, func(key string, r *row[V]) {
		switch {
		case r.pinned():
			evicted[key] = r
		case *released != nil:
			(*released)(key, r)
		}
	})
	if err != nil {
		// NewProcessor accepts only positive sizes.
		panic(fmt.Sprintf("row cache of %d rows: %v", size, err))
	}
	return rowCache[V]{lru: lru, evicted: evicted, byValue: byValue, released: released}
}

// unevict forgets the row r of key, clean again, if the LRU had let go of
// it.
func (c *rowCache[V]) unevict(key string, r *row[V]) {
	if c.win.holds(key) {
		c.win.settled(key, r)
		return
	}
	if _, ok := c.evicted[key]; !ok {
		return
	}
	delete(c.evicted, key)
	if *c.released != nil {
		(*c.released)(key, r)
	}
}

// hold takes the new row r of key, which is about to be changed: into the
// window rows or the LRU as add does, or, for a row held only while pinned
// (a timer's, see enginetimer.go), beside the LRU with the rows it evicted,
// which it leaves once the store holds it.
func (c *rowCache[V]) hold(key string, r *row[V]) {
	if pinnedOnly(key) {
		c.evicted[key] = r
		return
	}
	c.add(key, r)
}

// get returns the row of key if the engine holds it, making it the most
// recently used.
func (c *rowCache[V]) get(key string) (*row[V], bool) {
	if c.win.holds(key) {
		r, ok := c.win.m[key]
		return r, ok
	}
	if r, ok := c.lru.Get(key); ok {
		return r, true
	}
	r, ok := c.evicted[key]
	return r, ok
}

// heldWindow returns the window row of key, given as bytes, if the engine
// holds it, for a cache with window rows (win set) and a key of one.
func (c *rowCache[V]) heldWindow(key []byte) (*row[V], bool) {
	r, ok := c.win.m[string(key)]
	return r, ok
}

// peek returns the row of key if the engine holds it.
func (c *rowCache[V]) peek(key string) (*row[V], bool) {
	if c.win.holds(key) {
		r, ok := c.win.m[key]
		return r, ok
	}
	if r, ok := c.lru.Peek(key); ok {
		return r, true
	}
	r, ok := c.evicted[key]
	return r, ok
}

// drop forgets the row of key.
func (c *rowCache[V]) drop(key string) {
	if c.win.holds(key) {
		delete(c.win.m, key)
		return
	}
	c.lru.Remove(key) // which may move it to evicted
	delete(c.evicted, key)
}

// add holds the row r of key, which the engine did not hold.
func (c *rowCache[V]) add(key string, r *row[V]) {
	if c.win.holds(key) {
		c.win.m[key] = r
		return
	}
	c.lru.Add(key, r)
}

// valueSafe reports whether a copy of a value of type t shares nothing with
// the original, so that a decoded row can be handed out as a copy.
func valueSafe(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		// Strings share their bytes, but nothing can change them.
		return true
	case reflect.Array:
		return valueSafe(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !valueSafe(t.Field(i).Type) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

// value returns the row of key, decoded.
func (e *engine[V]) value(key string) (V, bool, error) {
	var zero V
	if e.cfg.group.table == nil {
		// A group with windows and no Persist has a table of windows only.
		return zero, false, e.noTable()
	}
	r, err := e.load(key)
	if err != nil || !r.exists {
		return zero, false, err
	}
	if r.hasVal {
		return r.val, true, nil
	}
	v, err := e.cfg.group.table.Decode(r.raw)
	if err != nil {
		return zero, false, fmt.Errorf("decode row %q of %s: %w", key, e.cfg.group.TableTopic(), err)
	}
	if e.rows.byValue {
		r.val, r.hasVal = v, true
	}
	return v, true, nil
}

// load returns the row of key from memory, or else from the store, keeping
// it in the cache.
func (e *engine[V]) load(key string) (*row[V], error) {
	if r, ok := e.rows.get(key); ok {
		return r, nil
	}
	if e.st == nil {
		return nil, e.noTable()
	}
	raw, err := e.st.Get([]byte(key))
	e.m.storeGet()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("read row %q: %w", key, err)
	}
	r := &row[V]{key: key, raw: raw, exists: err == nil}
	e.rows.add(key, r)
	return r, nil
}

// setValue sets the row of key to v, or deletes it, encoding v at once.
func (e *engine[V]) setValue(key string, v V, exists bool) error {
	if e.st == nil || e.cfg.group.table == nil {
		return e.noTable()
	}
	if !exists {
		var zero V
		return e.setRaw(key, nil, false, zero, false)
	}
	raw, err := e.cfg.group.table.Encode(v)
	if err != nil {
		return fmt.Errorf("encode row %q of %s: %w", key, e.cfg.group.TableTopic(), err)
	}
	if !e.rows.byValue {
		// The bytes may share memory with v, which the handler keeps.
		raw = bytes.Clone(raw)
	}
	return e.setRaw(key, raw, true, v, e.rows.byValue)
}

func (e *engine[V]) noTable() error {
	return fmt.Errorf("group %s has no table: declare one with Persist", e.cfg.group.name)
}

// setRaw sets the row of key to its encoded value raw, or deletes it; val is
// raw decoded, if hasVal.
func (e *engine[V]) setRaw(key string, raw []byte, exists bool, val V, hasVal bool) error {
	if e.st == nil {
		return e.noTable()
	}
	r, held := e.rows.get(key)
	e.setRow(key, r, held, raw, exists, val, hasVal)
	return nil
}

// setRow is setRaw of the row r of key as rows.get returned it: held is
// whether the engine holds it. It returns the row, made if not held; a
// caller that knows a row it did not hold does not exist marks it absent.
func (e *engine[V]) setRow(key string, r *row[V], held bool, raw []byte, exists bool, val V, hasVal bool) *row[V] {
	e.saveUndo(key, r, held)
	return e.writeRow(key, r, held, raw, exists, val, hasVal)
}

// writeRow is setRow with no undo entry, for a change no failure undoes.
func (e *engine[V]) writeRow(key string, r *row[V], held bool, raw []byte, exists bool, val V, hasVal bool) *row[V] {
	if exists && raw == nil {
		raw = []byte{} // nil is a tombstone
	}
	if !held {
		r = &row[V]{key: key}
		e.rows.hold(key, r)
	}
	if !r.dirty {
		// A clean row the engine holds is the store's.
		r.absent = held && !r.exists && !r.pending
		r.dirty = true
		e.dirty = append(e.dirty, key)
		e.dirtyRows = append(e.dirtyRows, r)
	}
	r.raw, r.exists, r.val, r.hasVal = raw, exists, val, hasVal
	r.purged = false
	return r
}

// unwritten reports whether the dirty row r of key needs no changelog
// record: the batch deleted a row that did not exist before it. The row
// is then clean, as the store has it.
func (e *engine[V]) unwritten(key string, r *row[V]) bool {
	if r.exists || !r.absent {
		return false
	}
	r.dirty = false
	e.rows.unevict(key, r)
	return true
}

// saveUndo remembers the row of key as it was before the current record
// first changed it; r is nil when the engine did not hold the row.
func (e *engine[V]) saveUndo(key string, r *row[V], held bool) {
	if _, ok := e.undo[key]; ok {
		return
	}
	u := undoEntry[V]{held: held}
	if held {
		u.row = *r
	}
	e.undo[key] = u
}

// undoRecord puts back the rows the current record changed.
func (e *engine[V]) undoRecord() {
	rows := &e.rows
	for key, u := range e.undo {
		r, ok := rows.peek(key)
		if ok {
			e.windowUndone(key, u, r)
		}
		switch {
		case !ok:
		case !u.held:
			rows.drop(key)
		default:
			*r = u.row
			if !r.pinned() {
				// Clean again: the store has it.
				rows.unevict(key, r)
			}
		}
	}
	// Keys first made dirty by this record were appended after
	// recordDirty.
	e.dirty = e.dirty[:e.recordDirty]
	clear(e.dirtyRows[e.recordDirty:])
	e.dirtyRows = e.dirtyRows[:e.recordDirty]
}

// markWritten marks the row r of key as written to the changelog, and
// returns its encoded value.
func (e *engine[V]) markWritten(key string, r *row[V]) []byte {
	r.dirty, r.pending = false, true
	e.rows.pendingKeys = append(e.rows.pendingKeys, key)
	e.rows.pendingRows = append(e.rows.pendingRows, r)
	return r.raw
}

// rowsApplied unpins the rows the store now holds, dropping those the cache
// had evicted.
func (e *engine[V]) rowsApplied() {
	rows := &e.rows
	for i, key := range rows.pendingKeys {
		r := rows.pendingRows[i]
		if !r.pending {
			continue // written more than once
		}
		r.pending = false
		if !r.dirty {
			// A purged window's row, a deletion, leaves the window
			// rows here (windowRows.settled).
			rows.unevict(key, r)
		}
	}
	clear(rows.pendingKeys)
	rows.pendingKeys = rows.pendingKeys[:0]
	clear(rows.pendingRows)
	rows.pendingRows = rows.pendingRows[:0]
	rows.win.applied(*rows.released)
}

// rowsDiscarded forgets the rows written to the changelog in a transaction
// that aborted, and every change since: the store, and so the cache, holds
// what was committed.
func (e *engine[V]) rowsDiscarded() {
	rows := &e.rows
	for _, key := range rows.pendingKeys {
		rows.drop(key)
	}
	for _, key := range e.dirty {
		rows.drop(key)
	}
	clear(rows.evicted) // after the removals, which move pinned rows there
	clear(rows.pendingKeys)
	rows.pendingKeys = rows.pendingKeys[:0]
	clear(rows.pendingRows)
	rows.pendingRows = rows.pendingRows[:0]
	e.dirty = e.dirty[:0]
	clear(e.dirtyRows)
	e.dirtyRows = e.dirtyRows[:0]
}
