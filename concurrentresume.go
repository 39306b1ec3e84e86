package sluice

// Committing and reading back which records of a concurrent input finished
// above the committed offset (concurrentmeta.go).
//
// Exactly once, the transaction's offset commit carries the metadata
// (eosconcurrent.go). At least once, the client commits the marked offsets
// itself, every CommitInterval and on revoke: a task notes in the
// processor's ccBook the offset it marked and the metadata that goes with
// it, once the emits of every record the metadata lists are acknowledged;
// the client's commits carry it through kgo's PreCommitFnContext (on the
// client's own context for its periodic commits); and since the client
// commits an offset only when it moved, refreshCommits commits the
// metadata of an offset already committed when records finished above it.
//
// On assignment, the processor fetches the committed offsets and metadata
// of the concurrent inputs' partitions in one request, and each new task
// tells its engine which records to skip.
//
// Invariants:
//   - A metadata string is only ever committed with the offset it was made
//     for: the hook sets it only on a partition whose offset matches.
//   - At least once, a noted record's emits are acknowledged; exactly once,
//     they are in the transaction that commits the metadata or in one
//     committed before.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ccBook is what the tasks of an at-least-once processor noted for the
// partitions of its concurrent inputs, for the client's commits.
type ccBook struct {
	mu    sync.Mutex
	parts map[string]map[int32]*ccNote
}

// ccNote is the metadata to commit with offset; dirty until a commit
// carried it.
type ccNote struct {
	offset int64
	meta   string
	dirty  bool
}

// newCCBook returns the book of p, or nil if p needs none: exactly once, or
// without a concurrent input.
func newCCBook[V any](p *Processor[V]) *ccBook {
	if p.cfg.guarantee == ExactlyOnce || len(p.g.concurrentInputs()) == 0 {
		return nil
	}
	return &ccBook{parts: make(map[string]map[int32]*ccNote)}
}

// note keeps meta as the metadata of offset for partition p of topic.
func (b *ccBook) note(topic string, p int32, offset int64, meta string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ps := b.parts[topic]
	if ps == nil {
		ps = make(map[int32]*ccNote)
		b.parts[topic] = ps
	}
	if n := ps[p]; n != nil && n.offset == offset && n.meta == meta {
		return
	}
	ps[p] = &ccNote{offset: offset, meta: meta, dirty: true}
}

// drop forgets the partitions of parts, which the processor let go of.
func (b *ccBook) drop(parts map[string][]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(b.parts[topic], p)
		}
	}
}

// setMetadata sets, in a commit the client is about to send, the metadata
// noted for the offsets it commits.
func (b *ccBook) setMetadata(req *kmsg.OffsetCommitRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range req.Topics {
		rt := &req.Topics[i]
		ps := b.parts[rt.Topic]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			if n := ps[rp.Partition]; n != nil && n.offset == rp.Offset && n.meta != "" {
				meta := n.meta
				rp.Metadata = &meta
			}
		}
	}
	return nil
}

// commitCtx returns ctx with the hook that sets the noted metadata on the
// client's commits; ctx itself for a nil book.
func (b *ccBook) commitCtx(ctx context.Context) context.Context {
	if b == nil {
		return ctx
	}
	return kgo.PreCommitFnContext(ctx, b.setMetadata)
}

// stale returns the noted offsets that are committed already, without the
// metadata noted since: the client, which commits only offsets that moved,
// would not commit them again.
func (b *ccBook) stale(committed map[string]map[int32]kgo.EpochOffset) map[string]map[int32]kgo.EpochOffset {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out map[string]map[int32]kgo.EpochOffset
	for topic, ps := range b.parts {
		for p, n := range ps {
			eo, ok := committed[topic][p]
			if !n.dirty || !ok || eo.Offset != n.offset {
				continue
			}
			if out == nil {
				out = make(map[string]map[int32]kgo.EpochOffset)
			}
			if out[topic] == nil {
				out[topic] = make(map[int32]kgo.EpochOffset)
			}
			out[topic][p] = eo
		}
	}
	return out
}

// carried marks the notes sent as committed, unless a newer note
// replaced them meanwhile.
func (b *ccBook) carried(sent map[string]map[int32]*ccNote) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for topic, ps := range sent {
		for p, n := range ps {
			if b.parts[topic][p] == n {
				n.dirty = false
			}
		}
	}
}

// notes returns the notes of offsets, to tell later whether they changed.
func (b *ccBook) notes(offsets map[string]map[int32]kgo.EpochOffset) map[string]map[int32]*ccNote {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]map[int32]*ccNote, len(offsets))
	for topic, ps := range offsets {
		out[topic] = make(map[int32]*ccNote, len(ps))
		for p := range ps {
			out[topic][p] = b.parts[topic][p]
		}
	}
	return out
}

// refreshCommits commits, every interval until ctx is done, the metadata
// noted for offsets already committed.
func (b *ccBook) refreshCommits(ctx context.Context, cl *kgo.Client, interval time.Duration, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := b.commitStale(ctx, cl); err != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
}

// commitStale commits the metadata noted for offsets already committed: the
// client, which commits only offsets that moved, does not.
func (b *ccBook) commitStale(ctx context.Context, cl *kgo.Client) error {
	if b == nil {
		return nil
	}
	offsets := b.stale(cl.CommittedOffsets())
	if len(offsets) == 0 {
		return nil
	}
	sent := b.notes(offsets)
	var cerr error
	cl.CommitOffsetsSync(b.commitCtx(ctx), offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && cerr == nil {
					cerr = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("commit the finished records of concurrent inputs: %w", cerr)
	}
	b.carried(sent)
	return nil
}

// ccResume is what a partition of a concurrent input resumes from: its
// committed offset and the metadata committed with it.
type ccResume struct {
	offset int64
	meta   string
}

// concurrentResume fetches, in one request, the committed offsets and
// metadata of the concurrent inputs' partitions in assigned, by partition
// number and topic. It returns nil for a group without a concurrent input,
// and on failure, which only costs the records above the committed offsets
// being handled again.
func (p *Processor[V]) concurrentResume(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) map[int32]map[string]ccResume {
	topics := p.g.concurrentInputs()
	if len(topics) == 0 {
		return nil
	}
	wanted := false
	for _, topic := range topics {
		wanted = wanted || len(assigned[topic]) > 0
	}
	if !wanted {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.ackTimeout)
	defer cancel()
	offs, err := fetchStable(ctx, kadm.NewClient(cl), p.g.name, topics, assigned)
	if err != nil {
		p.logger.Warn("could not read which records of concurrent inputs finished; they are handled again", "err", err)
		return nil
	}
	out := make(map[int32]map[string]ccResume)
	for _, topic := range topics {
		for _, n := range assigned[topic] {
			o, ok := offs.Lookup(topic, n)
			if !ok || o.At < 0 || o.Metadata == "" {
				continue
			}
			if out[n] == nil {
				out[n] = make(map[string]ccResume)
			}
			out[n][topic] = ccResume{offset: o.At, meta: o.Metadata}
		}
	}
	return out
}

// fetchStable fetches the committed offsets of topics for group as the
// client does before it consumes: once the group's pending transactional
// commits settled, so that the metadata read goes with the offset the
// client resumes from. It retries until ctx is done.
func fetchStable(ctx context.Context, adm *kadm.Client, group string, topics []string, assigned map[string][]int32) (kadm.OffsetResponses, error) {
	for {
		offs, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), group, topics...)
		if err == nil {
			for _, topic := range topics {
				for _, n := range assigned[topic] {
					if o, ok := offs.Lookup(topic, n); ok && o.Err != nil {
						err = fmt.Errorf("fetch offset of %s/%d: %w", topic, n, o.Err)
					}
				}
			}
		}
		if err == nil || !kerr.IsRetriable(err) && !errors.Is(err, kerr.UnstableOffsetCommit) {
			return offs, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
