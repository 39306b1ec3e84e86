package sluice

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
	// RestoreOffset and RestoreEnd say how far the view's restore is,
	// summed over its partitions: the next offsets to read, and the end
	// offsets it restores to, the partitions' high watermarks when it
	// began. RestoreOffset grows on once the view runs, as it follows the
	// table. Both are 0 before the restore begins and after Run returned.
	RestoreOffset, RestoreEnd int64
}

// Stats returns the view's state and its row count.
func (v *View[V]) Stats() ViewStats {
	s := ViewStats{Topic: v.topic, State: v.State(), Rows: -1}
	s.RestoreOffset, s.RestoreEnd = v.tv.restoreProgress()
	if s.State == ViewRunning {
		s.Rows = v.tv.rows()
	}
	return s
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
