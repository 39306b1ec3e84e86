package sluice

// What differs between the kinds of windows when they close and are
// purged: a window closes a delay after its end, and is purged a delay
// after its end, which the kind and the grace and retention decide.
//
// Tumbling and hopping windows are [start, end): one closes when stream
// time reaches its end plus grace. Sliding and session windows are
// [start, end], their bounds record times: a sliding window closes when
// stream time passes its end plus grace (1ns later), and a session when
// stream time reaches its end plus gap plus grace, as a record less than
// gap after it could extend it until then.

// minRetention is the shortest retention w allows, and its default: size
// plus grace for tumbling and hopping windows, gap plus grace for
// sessions, and twice the maximum difference plus grace for sliding
// windows, whose closed windows hold the aggregates the windows of a
// later out-of-order record start from.
func (w Windows) minRetention() int64 {
	if w.kind == slidingWindows {
		return addSat(addSat(int64(w.size), int64(w.size)), int64(w.grace))
	}
	return addSat(int64(w.size), int64(w.grace))
}

// closeDelay is how long after its end a window closes.
func (w Windows) closeDelay() int64 {
	switch w.kind {
	case sessionWindows:
		return addSat(int64(w.size), int64(w.grace))
	case slidingWindows:
		return addSat(int64(w.grace), 1)
	default:
		return int64(w.grace)
	}
}

// purgeDelay is how long after its end a window is purged: the retention
// counts from the window's start, or from a session's end, as a session's
// length depends on its records.
func (w Windows) purgeDelay() int64 {
	r := int64(w.retentionOf())
	switch w.kind {
	case sessionWindows:
		return r
	case slidingWindows:
		return addSat(r-int64(w.size), 1)
	default:
		return r - int64(w.size)
	}
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
