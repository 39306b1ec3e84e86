package sluice

// The partition engine's side of concurrent inputs exactly once
// (engineconcurrent.go): what each transaction writes and commits, and what
// the engine keeps once it ended.

import "github.com/twmb/franz-go/pkg/kgo"

// concurrentWrite hands out, exactly once, the emits of the records
// released since the last transaction ended and of those finished above
// the lowest unfinished record, for the driver to write in the transaction
// about to end, and calls commit with the offset of each concurrent input
// to commit in it (its lowest unreleased record, or past the last released)
// and the metadata that lists the records finished above it. A record
// listed has its emits in this transaction or in one committed before: an
// aborted transaction's are written again in the next, which lists them
// again.
func (e *engine[V]) concurrentWrite(commit func(topic string, eo kgo.EpochOffset, meta string)) []*kgo.Record {
	cc := e.cc
	if cc == nil {
		return nil
	}
	for topic, ci := range cc.inputs {
		switch {
		case len(ci.window) > 0:
			for _, c := range ci.window[1:] {
				if c.finished && len(c.out) > 0 {
					// Written now, its emits are no longer its
					// own to hand out at its release.
					cc.unwritten = append(cc.unwritten, c.out...)
					c.out = nil
				}
			}
			r := ci.window[0].r
			commit(topic, kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}, ci.finishedMeta(r.Offset))
		case len(ci.queue) > 0:
			r := ci.queue[0]
			commit(topic, kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}, "")
		case ci.marked:
			commit(topic, ci.mark, "")
		}
		ci.written += ci.unwritten
		ci.unwritten = 0
	}
	out := cc.unwritten
	cc.written = append(cc.written, out...)
	cc.unwritten = nil
	return out
}

// concurrentEnded tells the engine, exactly once, how the transaction
// ended. Committed, the records released in it are done with. Aborted,
// their emits are written again by the next one: the records finished, and
// the consumer, which rewinds no further than the offsets it believes
// committed, does not fetch them again.
func (e *engine[V]) concurrentEnded(committed bool) error {
	cc := e.cc
	if cc == nil {
		return nil
	}
	if committed {
		clear(cc.written)
		cc.written = cc.written[:0]
		for _, ci := range cc.inputs {
			ci.written = 0
		}
	} else {
		cc.unwritten = append(cc.written, cc.unwritten...)
		cc.written = nil
		for _, ci := range cc.inputs {
			ci.unwritten += ci.written
			ci.written = 0
		}
	}
	for _, ci := range cc.inputs {
		if err := e.fill(ci); err != nil {
			return err
		}
	}
	return nil
}
