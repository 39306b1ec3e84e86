package sluice

// What differs between the kinds of windows when they close and are
// purged: a window closes a delay after its end, and is purged a delay
// after its end, which the kind and the grace and retention decide.

// minRetention is the shortest retention w allows, and its default: size
// plus grace for tumbling and hopping windows, gap plus grace for
// sessions, and twice the maximum difference plus grace for sliding
// windows, whose closed windows hold the aggregates the windows of a
// later out-of-order record start from.
func (w Windows) minRetention() int64 {
	if w.kind == slidingWindows {
		return addSat(2*int64(w.size), int64(w.grace))
	}
	return addSat(int64(w.size), int64(w.grace))
}

// closeDelay is how long after its end a window closes: the grace, and for
// sessions also the gap, as a later record may extend a session until
// then.
func (w Windows) closeDelay() int64 {
	if w.kind == sessionWindows {
		return addSat(int64(w.size), int64(w.grace))
	}
	return int64(w.grace)
}

// purgeDelay is how long after its end a window is purged: the retention
// counts from the window's start, or from a session's end, as a session's
// length depends on its records.
func (w Windows) purgeDelay() int64 {
	r := int64(w.retentionOf())
	if w.kind == sessionWindows {
		return r
	}
	return r - int64(w.size)
}

// minRetentionText says what minRetention is made of, for errors.
func (w Windows) minRetentionText() string {
	switch w.kind {
	case sessionWindows:
		return "gap plus grace"
	case slidingWindows:
		return "twice the maximum difference plus grace"
	default:
		return "size plus grace"
	}
}
