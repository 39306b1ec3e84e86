package sluice

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// viewRowsMaxAge is how long a view's row count is reused before it is
// counted again.
const viewRowsMaxAge = 10 * time.Second

// ViewStats is what a view reports about itself.
type ViewStats struct {
	// Topic is the table topic the view copies.
	Topic string
	// State is where the view is in its life.
	State ViewState
	// Rows is the number of rows, counted at most every 10 seconds, so
	// possibly that old; -1 while the view is not restored.
	Rows int64
	// RowsCounted is when Rows was counted.
	RowsCounted time.Time
}

// KeyValue is a row of a view with its value as JSON.
type KeyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// viewCounter counts a view's rows for Stats and the metrics.
type viewCounter struct {
	mu      sync.Mutex
	rows    int64
	counted time.Time
}

// Stats returns the view's state and its approximate row count.
func (v *View[V]) Stats() ViewStats {
	s := ViewStats{Topic: v.topic, State: v.State(), Rows: -1}
	if s.State != ViewRunning {
		return s
	}
	c := &v.counter
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.counted) > viewRowsMaxAge {
		var n int64
		err := v.tv.iterate("", "", func(_, _ []byte) (bool, error) { n++; return true, nil })
		if err != nil {
			return s
		}
		c.rows, c.counted = n, time.Now()
	}
	s.Rows, s.RowsCounted = c.rows, c.counted
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
