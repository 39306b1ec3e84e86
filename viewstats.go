package sluice

import (
	"encoding/json"
	"fmt"
)

// ViewStats is what a view reports about itself.
type ViewStats struct {
	// Topic is the table topic the view copies.
	Topic string
	// State is where the view is in its life.
	State ViewState
	// Rows is the number of rows, as the view's stores count them while
	// they change (see store.RowCounter; the memory store, the default,
	// does). It is -1 while the view is not restored, or when a store does
	// not count its rows: a view never reads its rows to count them.
	Rows int64
}

// KeyValue is a row of a view with its value as JSON.
type KeyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Stats returns the view's state and its row count.
func (v *View[V]) Stats() ViewStats {
	s := ViewStats{Topic: v.topic, State: v.State(), Rows: -1}
	if s.State == ViewRunning {
		s.Rows = v.tv.rows()
	}
	return s
}

// GetJSON returns the row of key encoded as JSON, or ErrNotFound: what the
// view's Handler serves for GET /{key}.
func (v *View[V]) GetJSON(key string) (json.RawMessage, error) {
	val, err := v.Get(key)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(val)
	if err != nil {
		return nil, fmt.Errorf("view %s key %q: encode json: %w", v.topic, key, err)
	}
	return b, nil
}

// RangeJSON returns up to limit rows whose keys lie in [from, to), in key
// order, with values encoded as JSON, and whether more rows follow. An empty
// from starts at the first key; an empty to runs to the last.
func (v *View[V]) RangeJSON(from, to string, limit int) (rows []KeyValue, more bool, err error) {
	if limit <= 0 {
		return nil, false, fmt.Errorf("view %s: limit must be positive, got %d", v.topic, limit)
	}
	if from != "" && to != "" && from > to {
		return nil, false, fmt.Errorf("view %s: range start %q is after its end %q", v.topic, from, to)
	}
	var encErr error
	err = v.Iterate(from, to, func(k string, val V) bool {
		if len(rows) == limit {
			more = true
			return false
		}
		b, err := json.Marshal(val)
		if err != nil {
			encErr = fmt.Errorf("view %s key %q: encode json: %w", v.topic, k, err)
			return false
		}
		rows = append(rows, KeyValue{Key: k, Value: b})
		return true
	})
	if err == nil {
		err = encErr
	}
	return rows, more, err
}

// attachMetrics makes the view's state part of the metrics until the
// returned function is called.
func (v *View[V]) attachMetrics() (detach func()) {
	if v.metrics == nil {
		return func() {}
	}
	return v.metrics.state.attach(func(add func(d *stateDesc, val float64, labels ...string)) {
		s := v.Stats()
		if s.Rows >= 0 {
			add(descViewRows, float64(s.Rows), v.topic)
		}
		for _, st := range []ViewState{ViewIdle, ViewWaiting, ViewRestoring, ViewRunning, ViewClosed} {
			var on float64
			if st == s.State {
				on = 1
			}
			add(descViewState, on, v.topic, st.String())
		}
	})
}
