package sluice

// The partition engine's side of the metadata of concurrent inputs
// (concurrentmeta.go): the records the committed metadata lists as finished,
// which it skips on resume, and the metadata to commit with each offset.

// skipped reports whether the committed metadata lists offset as finished.
// Offsets are asked in ascending order.
func (ci *ccInput[V]) skipped(offset int64) bool {
	for len(ci.skip) > 0 && ci.skip[0].to <= offset {
		ci.skip = ci.skip[1:]
	}
	return len(ci.skip) > 0 && ci.skip[0].from <= offset
}

// resumeConcurrent tells the engine the offset committed for its partition
// of topic, a concurrent input, and the metadata committed with it: the
// records it lists as finished are skipped, not handled again, and their
// offsets count as finished.
func (e *engine[V]) resumeConcurrent(topic string, committed int64, meta string) {
	if ci := e.cc.inputs[topic]; ci != nil {
		ci.skip = decodeFinished(committed, meta)
	}
}

// finishedMeta returns the metadata to commit with offset base for ci: the
// finished records of its window, which are all above base.
func (ci *ccInput[V]) finishedMeta(base int64) string {
	var finished []int64
	for _, c := range ci.window {
		if c.finished && c.r.Offset > base {
			finished = append(finished, c.r.Offset)
		}
	}
	return encodeFinished(base, finished)
}

// concurrentNotes calls note, at least once, with the offset to commit of
// each concurrent input whose records finished above its lowest unfinished
// one, or whose offset moved, since the last call, and the metadata that
// lists them. The driver calls it once the emits of every finished record
// are acknowledged and the offsets marked.
func (e *engine[V]) concurrentNotes(note func(topic string, offset int64, meta string)) {
	if e.cc == nil {
		return
	}
	for topic, ci := range e.cc.inputs {
		if !ci.above && !ci.noted {
			continue
		}
		ci.above, ci.noted = false, false
		switch {
		case ci.marked:
			note(topic, ci.mark.Offset, ci.finishedMeta(ci.mark.Offset))
		case len(ci.window) > 0:
			base := ci.window[0].r.Offset
			note(topic, base, ci.finishedMeta(base))
		}
	}
}
