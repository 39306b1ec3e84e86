package sluicetest

// The typed side of the tester: records in and out through the codecs the
// group declared.

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/bridge"
)

// Send encodes v with the codec the group declared for input topic and
// sends it under key, as SendRaw does. It fails if the input's values are
// not of type M.
func Send[M any](h Harness, topic, key string, v M, opts ...RecordOpt) error {
	d := h.driver()
	c, ok := d.g.InputCodec(topic).(codec.Codec[M])
	if !ok {
		if d.g.InputCodec(topic) == nil {
			return fmt.Errorf("sluicetest: group %s does not read topic %s (its inputs: %v)", d.g.Name(), topic, d.g.Inputs())
		}
		return fmt.Errorf("sluicetest: input %s of group %s does not take values of type %T", topic, d.g.Name(), v)
	}
	raw, err := c.Encode(v)
	if err != nil {
		return fmt.Errorf("sluicetest: send to %s: encode: %w", topic, err)
	}
	return d.SendRaw(topic, key, raw, opts...)
}

// codecOf returns the topic and codec of a handle, which must hold values
// of type T.
func codecOf[T any](handle any) (string, codec.Codec[T], error) {
	if v := reflect.ValueOf(handle); v.Kind() == reflect.Pointer && v.IsNil() {
		return "", nil, fmt.Errorf("sluicetest: the %T is nil (a handle the group's definition did not set)", handle)
	}
	topic, c, ok := bridge.Handle(handle)
	if !ok {
		return "", nil, fmt.Errorf("sluicetest: %T: %w", handle, errNotHandle)
	}
	cc, ok := c.(codec.Codec[T])
	if !ok {
		return "", nil, fmt.Errorf("sluicetest: %T has no codec (it was not declared correctly, or is not a table of the group)", handle)
	}
	return topic, cc, nil
}

func decodeAll[T any](d *Driver, topic string, c codec.Codec[T]) ([]Message[T], error) {
	recs := d.Records(topic)
	out := make([]Message[T], 0, len(recs))
	for _, r := range recs {
		v, err := c.Decode(r.Value)
		if err != nil {
			return out, fmt.Errorf("sluicetest: %s/%d@%d: decode: %w", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, Message[T]{Record: r, Value: v})
	}
	return out, nil
}

// Output returns what the group wrote to the output o and committed, in the
// order it was written, decoded with o's codec.
func Output[T any](h Harness, o *sluice.OutputTopic[T]) ([]Message[T], error) {
	topic, c, err := codecOf[T](o)
	if err != nil {
		return nil, err
	}
	return decodeAll(h.driver(), topic, c)
}

// BatchOutput returns what a batch group sent to o and committed, in the
// order it was written, decoded with o's codec.
func BatchOutput[T any](h Harness, o *sluice.BatchOutputTopic[T]) ([]Message[T], error) {
	topic, c, err := codecOf[T](o)
	if err != nil {
		return nil, err
	}
	return decodeAll(h.driver(), topic, c)
}

// Loopbacks returns the committed records of the group's loopback topic,
// decoded with l's codec: what handlers sent with l.Loopback, and what was
// sent to the topic from outside.
func Loopbacks[M any](h Harness, l *sluice.LoopTopic[M]) ([]Message[M], error) {
	topic, c, err := codecOf[M](l)
	if err != nil {
		return nil, err
	}
	return decodeAll(h.driver(), topic, c)
}

// SeedJoin writes v as the row of key to the joined table j, on the
// partition the group's Hasher places key on, where a handler's j.Get
// finds it. What was processed is committed first.
func SeedJoin[T any](h Harness, j *sluice.JoinedTable[T], key string, v T) error {
	topic, c, err := codecOf[T](j)
	if err != nil {
		return err
	}
	return seedEncoded(h.driver(), topic, c, key, v)
}

// SeedLookup writes v as the row of key to the lookup table l, where a
// handler's l.Get finds it. What was processed is committed first.
func SeedLookup[T any](h Harness, l *sluice.LookupTable[T], key string, v T) error {
	topic, c, err := codecOf[T](l)
	if err != nil {
		return err
	}
	return seedEncoded(h.driver(), topic, c, key, v)
}

func seedEncoded[T any](d *Driver, topic string, c codec.Codec[T], key string, v T) error {
	raw, err := c.Encode(v)
	if err != nil {
		return fmt.Errorf("sluicetest: seed %s key %q: encode: %w", topic, key, err)
	}
	if raw == nil {
		raw = []byte{}
	}
	return d.seed(topic, []byte(key), raw)
}

// TableRow returns the committed row of key in a batch group's table, the
// one st (declared with sluice.BatchTable) reads and writes.
func TableRow[K, V, T any](t *BatchTester[K, V], st *sluice.BatchStore[T], key string) (T, bool, error) {
	var zero T
	_, c, err := codecOf[T](st)
	if err != nil {
		return zero, false, err
	}
	raw, ok, err := t.RawRow(key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := c.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("sluicetest: row %q: decode: %w", key, err)
	}
	return v, true, nil
}

// SetTableRow writes v as the row of key in a batch group's table, through
// its changelog. What was processed is committed first.
func SetTableRow[K, V, T any](t *BatchTester[K, V], st *sluice.BatchStore[T], key string, v T) error {
	_, c, err := codecOf[T](st)
	if err != nil {
		return err
	}
	if t.g.Table() == "" {
		return fmt.Errorf("sluicetest: group %s has no table", t.g.Name())
	}
	return seedEncoded(t.Driver, t.g.Table(), c, key, v)
}

// Call runs the handler h on one record of key with msg, in the engine of
// key's partition, as if it were the handler of the group's first input:
// it sees the key's committed row (seed it with SetRow), and its row
// change, emits and loopbacks are committed as those of a record sent with
// Send, so Row, Output and the rest show them. The error is what the
// group's error policy makes of the handler's: under the default Fail, the
// handler's error in a *sluice.RecordError; under Skip, nil. The record is
// in no topic: its offset is -1. What was processed before is committed
// first.
func Call[V, M any](t *Tester[V], h sluice.Handler[V, M], key string, msg M, opts ...RecordOpt) error {
	if h == nil {
		return errors.New("sluicetest: handler is nil")
	}
	d := t.Driver
	if err := d.Commit(); err != nil {
		return err
	}
	r := &kgo.Record{Topic: d.g.Inputs()[0], Key: []byte(key), Partition: -1, Offset: -1}
	for _, o := range opts {
		o(&sent{r})
	}
	if r.Partition < 0 {
		r.Partition = d.PartitionOf(key)
	}
	if r.Partition >= d.partitions {
		return fmt.Errorf("sluicetest: partition %d: there are %d partitions", r.Partition, d.partitions)
	}
	p := d.parts[r.Partition]
	p.work = true
	err := p.eng.Call(d.ctx, r, func(ctx any) error { return h(ctx.(*sluice.Context[V]), msg) })
	d.writeEffects(p)
	if err != nil {
		return d.stopped(err)
	}
	return d.Commit()
}
