package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
)

// committedTotal is the sum of group's committed offsets of topic, over all
// partitions.
func committedTotal(adm *kadm.Client, group, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range offs[topic] {
		if o.Err != nil {
			return 0, o.Err
		}
		n += o.At
	}
	return n, nil
}

// TestIdleProcessorCommitsItsLastRecordsBeforeTheCommitInterval runs a
// table group and a windowed group with a commit interval of a minute over
// records written before it starts, and nothing after: once their effects
// are written, the processor commits their offsets without waiting for
// the interval, which is what a restart and the group's lag go by.
func TestIdleProcessorCommitsItsLastRecordsBeforeTheCommitInterval(t *testing.T) {
	const (
		partitions = 3
		records    = 60
	)
	for _, c := range []struct {
		name  string
		group func() (group, topic string, run func(opts ...sluice.ProcessorOpt) *running)
	}{
		{"table", func() (string, string, func(...sluice.ProcessorOpt) *running) {
			return "idlecount", "idleclicks", func(opts ...sluice.ProcessorOpt) *running {
				return runProcessor(t, defineCounter("idlecount", "idleclicks"), opts...)
			}
		}},
		{"windows", func() (string, string, func(...sluice.ProcessorOpt) *running) {
			return "wcounts", "wclicks", func(opts ...sluice.ProcessorOpt) *running {
				return runProcessor(t, windowCounts(), opts...)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(partitions))
			cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation())
			adm := kadm.NewClient(cl)
			group, topic, run := c.group()
			var recs []*kgo.Record
			for i := range records {
				recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%7), Value: []byte("click"), Timestamp: time.Unix(int64(i), 0)})
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			// Twice the wait: the interval's commit comes too late.
			opts := append(processorOpts(b, partitions, t.TempDir()), sluice.CommitInterval(time.Minute))
			r := run(opts...)
			defer r.stop(t)
			waitFor(t, 30*time.Second, func() error {
				n, err := committedTotal(adm, group, topic)
				if err != nil {
					return err
				}
				if n != records {
					return fmt.Errorf("committed %d of %d records", n, records)
				}
				return nil
			})
		})
	}
}
