package sluice

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// StrictPartitioning makes an input record that is not on its key's
// partition (see MisplacedError) a failed record: the error policy (OnError)
// stops at it, skips it or dead-letters it with sluice-error-kind
// "misplaced". Without it such a record is processed where it is, and
// counted (Stats.Misplaced, sluice_records_misplaced_total) and logged.
// Default: off.
func StrictPartitioning() ProcessorOpt {
	return processorOpt(func(c *processorConfig) { c.strictPartitioning = true })
}

// MisplacedError is an input record whose key the processor's Hasher places
// on another partition than the one it was read from: it was produced to an
// explicit partition or with another partitioner. Its row lives in the
// partition it is on, where views, lookups and loopbacks, which follow the
// Hasher, do not look for it.
type MisplacedError struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	// Want is the partition the Hasher places Key on; Hasher names it.
	Want   int32
	Hasher string
}

func (e *MisplacedError) Error() string {
	return fmt.Sprintf("record %s/%d@%d: key %q belongs on partition %d under the %s hasher",
		e.Topic, e.Partition, e.Offset, e.Key, e.Want, e.Hasher)
}

// placement checks that input records are on their key's partition. The
// partition count is set once the processor checked its topics, before any
// task runs.
type placement struct {
	partitions int32 // of every input, which are co-partitioned
	misplaced  atomic.Int64
	warned     sync.Map // topic partition → struct{}: logged at Warn once
}

type topicPartition struct {
	topic     string
	partition int32
}

// checkPlacement reports r if its key is not on its key's partition: it is
// counted and logged, and returned as an error under StrictPartitioning.
// Records with a nil or empty key are not placed by key, so never reported.
func (e *engine[V]) checkPlacement(r *kgo.Record) error {
	pl := e.cfg.placement
	if len(r.Key) == 0 || pl.partitions <= 0 {
		return nil
	}
	h := e.cfg.hasher
	want := h.fn.Partition(r.Key, int(pl.partitions))
	if want == r.Partition {
		return nil
	}
	err := &MisplacedError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Want: want, Hasher: h.String()}
	pl.misplaced.Add(1)
	e.cfg.metrics.misplacedRecord(r.Topic)
	// A topic written with another partitioner has a misplaced record at
	// nearly every offset: the first of each partition is a warning, the
	// others are details, and the counter says how many there are.
	level := e.cfg.logger.Debug
	if _, seen := pl.warned.LoadOrStore(topicPartition{r.Topic, r.Partition}, struct{}{}); !seen {
		level = e.cfg.logger.Warn
	}
	level("record is not on its key's partition; views and lookups do not find its row (see Partitioning)",
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), "want", want, "hasher", h.String())
	if e.cfg.strictPartitioning {
		return err
	}
	return nil
}
