package sluice

// Exactly once with concurrent inputs (ConcurrentInput): the transaction's
// offset commit carries, for the partitions of concurrent inputs, the
// offset each task set at prepare (its lowest unreleased record) instead of
// the offset after the last record polled, which the client would commit,
// with the metadata listing the records finished above it, whose emits the
// same transaction writes (concurrentmeta.go);
// and while a task holds records of a concurrent input, the poll loop ends
// a transaction every CommitInterval even when nothing new was polled, so
// that the records that finish meanwhile are committed.
//
// The client still believes it committed what it polled: after an abort it
// rewinds no further than that, and the tasks, which keep what the
// transaction held, drop what they are handed again (engineconcurrent.go).
// The partitions' next owner reads the offsets actually committed.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// concurrentCommit returns ctx with the hook that sets the offsets of the
// tasks' concurrent inputs in the transaction's offset commit; ctx itself
// for a group without concurrent inputs. It is called after prepare, so
// the tasks' offsets are set.
func (e *eos[V]) concurrentCommit(ctx context.Context, tasks []*task[V]) context.Context {
	if len(e.p.g.concurrentInputs()) == 0 {
		return ctx
	}
	return kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		for i := range req.Topics {
			if rt := &req.Topics[i]; rt.TopicID != ([16]byte{}) {
				e.topicIDs[rt.Topic] = rt.TopicID
			}
		}
		for _, t := range tasks {
			t.ccMu.Lock()
			for topic, c := range t.ccCommit {
				e.setTxnOffset(req, topic, t.partition, c)
			}
			t.ccMu.Unlock()
		}
		return nil
	})
}

// setTxnOffset sets the offset of partition p of topic in req, and the
// metadata that lists the records finished above it, adding the partition
// if the client left it out, as it does for a partition from which nothing
// was polled since the last commit. Without records finished above it, the
// metadata is the client's, the member ID.
func (e *eos[V]) setTxnOffset(req *kmsg.TxnOffsetCommitRequest, topic string, p int32, c ccCommit) {
	eo := c.eo
	var rt *kmsg.TxnOffsetCommitRequestTopic
	for i := range req.Topics {
		if req.Topics[i].Topic == topic {
			rt = &req.Topics[i]
			break
		}
	}
	if rt == nil {
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic, t.TopicID = topic, e.topicIDs[topic]
		req.Topics = append(req.Topics, t)
		rt = &req.Topics[len(req.Topics)-1]
	}
	for i := range rt.Partitions {
		if rp := &rt.Partitions[i]; rp.Partition == p {
			rp.Offset, rp.LeaderEpoch = eo.Offset, eo.Epoch
			if c.meta != "" {
				rp.Metadata = &c.meta
			}
			return
		}
	}
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = p, eo.Offset, eo.Epoch
	rp.Metadata = &req.MemberID
	if c.meta != "" {
		rp.Metadata = &c.meta
	}
	rt.Partitions = append(rt.Partitions, rp)
}

// ccCommit is what a transaction commits for a partition of a concurrent
// input: the offset, and the metadata listing the records finished above
// it ("" if none).
type ccCommit struct {
	eo   kgo.EpochOffset
	meta string
}

// concurrentWork gives the next transaction work when a task holds records
// of a concurrent input that a transaction has yet to commit. It is called
// once the poll loop decided whether to let a rebalance go ahead: the open
// transaction holds nothing of these records until prepare, so a rebalance
// loses none of their effects.
func (e *eos[V]) concurrentWork() {
	if e.txnHasWork || len(e.p.g.concurrentInputs()) == 0 {
		return
	}
	for _, t := range e.p.activeTasks() {
		if t.ccBusy.Load() {
			e.txnHasWork, e.txnStart = true, time.Now()
			return
		}
	}
}
