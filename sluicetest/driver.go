package sluicetest

// The driver: it runs a group's partition engines, one per partition as a
// processor's tasks do, over the in-memory log, doing what the Kafka task
// and the delivery guarantee do around the same engines.
//
// Invariants:
//   - One goroutine, the test's, calls the driver; it starts none (the
//     engine runs a concurrent input's handlers in goroutines, and returns
//     from Process once they finished).
//   - A partition's engine processes the records of its partition of each
//     input from its position; its committed positions are where a new
//     engine (after a crash or a rebalance) starts again.
//   - Commit writes the changelog records after the effects that led to
//     them, then (exactly once) commits the transaction, then applies the
//     rows to the stores and commits the positions: the order of the Kafka
//     task, so nothing is committed before the effects it depends on.
//   - At least once, what an engine writes is visible at once; exactly
//     once, it is in the open transaction until Commit, so loopbacks reach
//     their partition only after the transaction that sent them commits.
//   - A store is only ever what the changelog says: restoring a partition
//     builds a new store from the committed changelog records.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/bridge"
	"github.com/sluice-io/sluice/store"
)

// Driver runs a group's partition engines over an in-memory log. It is
// what Tester and BatchTester share: their records, commits, crashes and
// rebalances. A Driver is not safe for concurrent use.
type Driver struct {
	g          bridge.Group
	partitions int32
	eos        bool
	manual     bool
	ctx        context.Context

	logs  map[string]*topicLog
	parts []*partition
	// Records of the open transaction, exactly once.
	open []written
	// Partitions with records to read, in the order they got them.
	ready   []int32
	isReady []bool
	inputs  map[string]bool
	topics  []string // the inputs, in definition order
	readBuf []*kgo.Record
	// The Fail policy stopped at a record: every partition is read again
	// at the next Commit or Send, the failed record's among them.
	stalled bool
	// Records the group wrote to its own inputs (its loopback) since the
	// test last called in, to stop a loop that never settles.
	looped int
	// The wall clock the engines see; only AdvanceClock moves it.
	clock time.Time
}

// maxLoopbacks is how many loopbacks one call of the test may lead to
// before the tester gives up on them settling.
const maxLoopbacks = 100000

type partition struct {
	n         int32
	eng       bridge.Engine
	table     store.Store
	joins     map[string]store.Store
	pos       map[string]int64 // next offset to read, per input
	committed map[string]int64
	// Records were processed (or effects written) since the last commit.
	work bool
	// Input records handed to the engine since the last commit.
	handed int64
}

func (d *Driver) driver() *Driver { return d }

func newDriver(g any, c config) (*Driver, error) {
	bg, err := bridge.NewGroup(g, c.partitions, c.opts)
	if err != nil {
		return nil, fmt.Errorf("sluicetest: %w", err)
	}
	d := &Driver{
		g:          bg,
		partitions: c.partitions,
		eos:        bg.ExactlyOnce(),
		manual:     c.manual,
		ctx:        context.Background(),
		logs:       make(map[string]*topicLog),
		isReady:    make([]bool, c.partitions),
		inputs:     make(map[string]bool),
		clock:      c.clock,
	}
	d.topics = bg.Inputs()
	for _, in := range d.topics {
		d.inputs[in] = true
	}
	d.parts = make([]*partition, c.partitions)
	for i := range d.parts {
		p := &partition{n: int32(i), pos: make(map[string]int64), committed: make(map[string]int64)}
		d.parts[i] = p
		d.restore(p)
	}
	return d, nil
}

// Partitions returns the partition count of every topic of the log.
func (d *Driver) Partitions() int32 { return d.partitions }

// PartitionOf returns the partition the group's Hasher places key on.
func (d *Driver) PartitionOf(key string) int32 { return d.g.Partition([]byte(key), d.partitions) }

func (d *Driver) topic(name string) *topicLog {
	l := d.logs[name]
	if l == nil {
		l = newTopicLog(d.partitions)
		d.logs[name] = l
	}
	return l
}

// write appends r to the log: on its partition, or on the one the group's
// Hasher places its key on, as the processor's client does; in the open
// transaction exactly once.
func (d *Driver) write(r *kgo.Record, external bool) {
	if r.Partition < 0 {
		r.Partition = d.g.Partition(r.Key, d.partitions)
	}
	state := committed
	if d.eos && !external {
		state = open
	}
	l := d.topic(r.Topic)
	pos := l.append(r, state)
	if !external && d.inputs[r.Topic] {
		d.looped++
	}
	if state == open {
		d.open = append(d.open, written{l, pos})
	} else if d.inputs[r.Topic] {
		d.markReady(r.Partition)
	}
}

func (d *Driver) markReady(p int32) {
	if !d.isReady[p] {
		d.isReady[p] = true
		d.ready = append(d.ready, p)
	}
}

// pump processes every record there is to read, and what they write in
// turn, until there is none.
func (d *Driver) pump() error {
	if d.stalled {
		d.stalled = false
		for n := range d.partitions {
			d.markReady(n)
		}
	}
	// Polling may make partitions ready, which join the end of the list.
	for i := 0; i < len(d.ready); i++ {
		n := d.ready[i]
		d.isReady[n] = false
		err := d.poll(d.parts[n])
		if err == nil && d.looped > maxLoopbacks {
			err = fmt.Errorf("sluicetest: group %s wrote more than %d loopbacks without settling", d.g.Name(), maxLoopbacks)
		}
		if err != nil {
			d.ready = slices.Delete(d.ready, 0, i+1)
			return err
		}
	}
	d.ready = d.ready[:0]
	return nil
}

// poll hands the engine of p the records of its partition of each input.
func (d *Driver) poll(p *partition) error {
	if size := d.g.BatchSize(); size > 0 {
		return d.pollBatch(p, size)
	}
	for _, topic := range d.topics {
		l := d.logs[topic]
		if l == nil {
			continue
		}
		recs, next := l.read(p.n, p.pos[topic], d.readBuf[:0])
		d.readBuf = recs
		if len(recs) == 0 {
			p.pos[topic] = next
			continue
		}
		p.work = true
		done, err := p.eng.Process(d.ctx, recs)
		p.handed += int64(done)
		d.writeEffects(p)
		if err != nil {
			p.pos[topic] = recs[done].Offset
			clear(recs)
			return err
		}
		p.pos[topic] = next
		clear(recs)
	}
	return nil
}

// pollBatch hands the engine of p the records of its partition of every
// input, in batches of at most size records, as a batch task closes them.
func (d *Driver) pollBatch(p *partition, size int) error {
	var batch []*kgo.Record
	nexts := make(map[string]int64)
	for _, topic := range d.topics {
		l := d.logs[topic]
		if l == nil {
			continue
		}
		var next int64
		batch, next = l.read(p.n, p.pos[topic], batch)
		nexts[topic] = next
	}
	for len(batch) > 0 {
		n := min(size, len(batch))
		p.work = true
		_, err := p.eng.Process(d.ctx, batch[:n])
		d.writeEffects(p)
		if err != nil {
			// The batch is not done: its records stay to be read again.
			for _, r := range batch {
				if off, ok := nexts[r.Topic]; !ok || r.Offset < off {
					nexts[r.Topic] = r.Offset
				}
			}
			maps.Copy(p.pos, nexts)
			return err
		}
		p.handed += int64(n)
		batch = batch[n:]
	}
	maps.Copy(p.pos, nexts)
	return nil
}

func (d *Driver) writeEffects(p *partition) {
	for _, r := range p.eng.Effects() {
		p.work = true
		d.write(r, false)
	}
}

// Commit ends the batch in hand as a processor does when it commits: every
// partition engine that processed records writes its changelog records,
// the transaction commits (exactly once), the rows reach the stores and the
// input positions are committed. Loopbacks that became visible are then
// processed and committed in turn, until there is nothing left to do; a
// group whose loopbacks do not settle within 100000 of them fails with an
// error. With
// the default automatic commits every Send ends with a Commit; with
// ManualCommit the test calls it.
//
// Under the Fail policy, a record that fails stops processing as it stops a
// processor: Commit returns its error. At least once, what came before it
// is committed; exactly once, the transaction aborts. Either way the failed
// record is not committed, and the next Commit or Send meets it again.
func (d *Driver) Commit() error {
	d.looped = 0
	for {
		if err := d.pump(); err != nil {
			return d.stopped(err)
		}
		if !d.dirty() {
			return nil
		}
		if err := d.commitOnce(); err != nil {
			return err
		}
	}
}

func (d *Driver) dirty() bool {
	if len(d.open) > 0 {
		return true
	}
	for _, p := range d.parts {
		if p.work {
			return true
		}
	}
	return false
}

func (d *Driver) commitOnce() error {
	for _, p := range d.parts {
		if !p.work {
			continue
		}
		for _, r := range p.eng.EndBatch() {
			d.write(r, false)
		}
	}
	if d.eos {
		for _, w := range d.open {
			e := w.entry()
			e.state = committed
			if d.inputs[e.rec.Topic] {
				d.markReady(e.rec.Partition)
			}
		}
		clear(d.open)
		d.open = d.open[:0]
		d.g.Ended(true, 0)
	}
	var errs []error
	for _, p := range d.parts {
		if !p.work {
			continue
		}
		if err := p.eng.Applied(d.changelogEnd(p.n), d.windowsEnd(p.n)); err != nil {
			errs = append(errs, err)
		}
		maps.Copy(p.committed, p.pos)
		p.work, p.handed = false, 0
	}
	return errors.Join(errs...)
}

// stopped ends processing after the Fail policy stopped at a record, as
// the processor does when it stops: at least once, a task writes what came
// before the record; exactly once, the last transaction aborts.
func (d *Driver) stopped(err error) error {
	var cerr error
	if d.eos {
		d.abort()
	} else {
		cerr = d.commitOnce()
	}
	d.stalled = true
	return errors.Join(err, cerr)
}

// windowsEnd is the end of partition p of the group's windows topic, -1
// for a group without one.
func (d *Driver) windowsEnd(p int32) int64 {
	windows := d.g.Windows()
	if windows == "" {
		return -1
	}
	return int64(len(d.topic(windows).parts[p]))
}

func (d *Driver) changelogEnd(p int32) int64 {
	table := d.g.Table()
	if table == "" {
		return 0
	}
	return int64(len(d.topic(table).parts[p]))
}

// Abort aborts the open transaction, exactly once, as a failed commit or a
// failed record does: what the records processed since the last commit
// wrote is aborted (read-committed readers never see it), the engines
// forget their row changes, and the records are read again from the last
// committed positions by the next Commit or Send. At least once there is no
// transaction, and Abort returns an error.
func (d *Driver) Abort() error {
	if !d.eos {
		return errors.New("sluicetest: Abort needs Guarantee(ExactlyOnce): at least once there is no transaction to abort")
	}
	d.abort()
	return nil
}

func (d *Driver) abort() {
	for _, w := range d.open {
		w.entry().state = aborted
	}
	clear(d.open)
	d.open = d.open[:0]
	var redone int64
	for _, p := range d.parts {
		p.eng.Discarded()
		redone += p.handed
		d.rewind(p)
	}
	d.g.Ended(false, redone)
}

// rewind sets p back to its committed positions, with records to read.
func (d *Driver) rewind(p *partition) {
	clear(p.pos)
	maps.Copy(p.pos, p.committed)
	p.work, p.handed = false, 0
	d.markReady(p.n)
}

// SendRaw writes a record to topic, an input of the group (or its
// loopback), with value as its bytes, as a producer outside the group would,
// and processes it. The record goes to the partition the group's Hasher
// places key on unless ToPartition says otherwise. Unless the tester was
// made with ManualCommit, SendRaw then commits (see Commit), and returns
// its error. With ManualCommit, a batch group's records wait for Commit,
// which hands each partition's to the handler in batches of at most
// BatchSize.
func (d *Driver) SendRaw(topic, key string, value []byte, opts ...RecordOpt) error {
	if !d.inputs[topic] {
		return fmt.Errorf("sluicetest: group %s does not read topic %s (its inputs: %v)", d.g.Name(), topic, d.g.Inputs())
	}
	// Stamped, as a producer stamps a record, with the time it is sent.
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Partition: -1, Timestamp: d.now()}
	for _, o := range opts {
		o(&sent{r})
	}
	if r.Partition >= d.partitions {
		return fmt.Errorf("sluicetest: partition %d of %s: there are %d partitions", r.Partition, topic, d.partitions)
	}
	d.write(r, true)
	if d.manual {
		if d.g.BatchSize() > 0 {
			// A batch holds what was sent since the last commit.
			return nil
		}
		d.looped = 0
		if err := d.pump(); err != nil {
			return d.stopped(err)
		}
		return nil
	}
	return d.Commit()
}

// Records returns the committed records of topic, in the order they were
// written: what a read-committed consumer of the topic sees.
func (d *Driver) Records(topic string) []Record {
	l := d.logs[topic]
	if l == nil {
		return nil
	}
	var out []Record
	for _, pos := range l.all {
		if e := l.at(pos); e.state == committed {
			out = append(out, recordOf(e.rec))
		}
	}
	return out
}

// DeadLetters returns the committed records of the group's dead-letter
// topic (see sluice.DeadLetter), with the headers that say why each failed;
// none without the DeadLetter policy.
func (d *Driver) DeadLetters() []Record {
	topic := d.g.DeadLetterTopic()
	if topic == "" {
		return nil
	}
	return d.Records(topic)
}

// Topics returns the topics of the log that hold records, sorted.
func (d *Driver) Topics() []string {
	var topics []string
	for name, l := range d.logs {
		if len(l.all) > 0 {
			topics = append(topics, name)
		}
	}
	slices.Sort(topics)
	return topics
}

// RawRow returns the committed row of key in the group's table, encoded:
// for a batch group whose table handle the test cannot reach.
func (d *Driver) RawRow(key string) ([]byte, bool, error) {
	if d.g.Table() == "" {
		return nil, false, fmt.Errorf("sluicetest: group %s has no table", d.g.Name())
	}
	p := d.parts[d.PartitionOf(key)]
	raw, err := p.table.Get([]byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return raw, true, nil
}
