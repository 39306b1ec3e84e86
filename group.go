package sluice

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/codec"
)

// Group is the definition of a processing unit: the streams it reads, the
// table it keeps, the topics it writes and the tables it reads. A Group is
// only a description; a Processor runs it.
//
// A group is built by DefineGroup followed by edge functions, each of which
// names the group first so that the table type V ties them together at
// compile time:
//
//	g := sluice.DefineGroup[User]("mini-group")
//	sluice.Persist(g, codec.JSON[User]())
//	sluice.Input(g, "user-clicks", codec.String(), countClick)
//
// Mistakes that types cannot catch (an empty topic, a topic name Kafka
// refuses, a topic read twice, a missing handler) are collected and
// reported, each naming its edge, by Validate and by NewProcessor. Kafka
// accepts topic names of up to 249 ASCII letters, digits, '.', '_' and
// '-'; the group's own topics (its table, windows and loopback topics)
// are named after it, so a group that keeps any needs a name that makes
// valid topic names.
type Group[V any] struct {
	name    string
	table   codec.Codec[V]
	inputs  []*inputEdge[V]
	outputs map[string]*outputEdge
	joins   []*tableEdge
	lookups []*tableEdge
	errs    []error
	onTimer TimerHandler[V]
	windows []*windowAgg[V]

	// Whether a decoded row may be kept and handed out as a copy: V holds
	// no references, found once here rather than per record.
	rowsByValue bool
}

// Handler processes one record of an input: msg is the decoded value; ctx
// gives the record's key, the key's table row, and the effects the handler
// may cause. A returned error fails the record, and so does a panic, which
// sluice recovers: the record leaves no effects, and the group's error
// policy (OnError) decides what follows. Under the default, Fail, the
// processor stops and the record is not committed.
type Handler[V, M any] func(ctx *Context[V], msg M) error

// inputEdge is a stream the group reads: an input or the loopback.
type inputEdge[V any] struct {
	topic  string
	loop   bool
	decode func(*Context[V], []byte) error // decodes and calls the handler
	// decodeAt, for an input with RecordTime, decodes the record and
	// returns its time and the call of the handler with the decoded value.
	decodeAt func(*Context[V], *kgo.Record) (at int64, handle func() error, err error)
	codec    any          // the codec.Codec[M] of its values, for sluicetest
	conc     *concurrency // a ConcurrentInput's, nil for one handled in order
}

type outputEdge struct {
	topic string
}

type tableEdge struct {
	topic string
	kind  string // "join" or "lookup"
}

// DefineGroup starts the definition of the group called name, whose table
// rows (if it persists any) have type V. The name is the Kafka consumer group
// id, and the table topic is name + "-table".
func DefineGroup[V any](name string) *Group[V] {
	g := &Group[V]{name: name, outputs: make(map[string]*outputEdge), rowsByValue: valueSafe(reflect.TypeFor[V]())}
	if name == "" {
		g.errs = append(g.errs, errors.New("group name is empty"))
	}
	return g
}

// Name returns the group's name, which is also its Kafka consumer group id.
func (g *Group[V]) Name() string { return g.name }

// TableTopic returns the name of the group's table topic, its changelog.
func (g *Group[V]) TableTopic() string { return g.name + "-table" }

// WindowsTopic returns the name of the changelog topic of the group's
// windows: the rows of its windowed aggregations, apart from its table's
// rows, so that a window that closes needs no tombstone (windowlog.go).
// Only a group with windowed aggregations has one.
func (g *Group[V]) WindowsTopic() string { return g.name + "-windows" }

// windowLogged reports whether the group has a windows topic.
func (g *Group[V]) windowLogged() bool { return len(g.windows) > 0 }

// LoopTopic returns the name of the group's loopback topic.
func (g *Group[V]) LoopTopic() string { return g.name + "-loop" }

// Persisted reports whether the group keeps a table: it persists one
// (Persist), or it has windowed aggregations (Aggregate), whose windows are
// rows of a table even when the group has no rows of its own.
func (g *Group[V]) Persisted() bool { return g.table != nil || len(g.windows) > 0 }

// Validate reports every mistake in the definition, each naming its edge, or
// nil when the group can run.
func (g *Group[V]) Validate() error {
	errs := slices.Clone(g.errs)
	if g.name != "" {
		var own []string
		if g.Persisted() {
			own = append(own, g.TableTopic())
		}
		if g.windowLogged() {
			own = append(own, g.WindowsTopic())
		}
		if err := checkGroupTopics(g.name, own...); err != nil {
			errs = append(errs, err)
		}
	}
	if len(g.inputs) == 0 {
		errs = append(errs, errors.New("no inputs: a group needs at least one Input"))
	}
	if topics := g.concurrentInputs(); len(topics) > 0 && g.table != nil {
		errs = append(errs, fmt.Errorf("concurrent inputs %s: a group with a concurrent input cannot Persist a table, whose rows its handlers would share: keep the rows in another group", strings.Join(topics, ", ")))
	}
	if topics := g.concurrentInputs(); len(topics) > 0 && len(g.windows) > 0 {
		errs = append(errs, fmt.Errorf("concurrent inputs %s: a group with a concurrent input cannot have windowed aggregations, whose windows are table rows its handlers would share: aggregate in another group", strings.Join(topics, ", ")))
	}
	if g.onTimer != nil && g.table == nil {
		errs = append(errs, errors.New("timers: a group with a timer handler needs a table: declare one with Persist"))
	}
	return groupError(g.name, errs)
}

func groupError(name string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("group %s: invalid definition: %s", name, strings.Join(msgs, "; "))
}

func (g *Group[V]) fail(format string, args ...any) {
	g.errs = append(g.errs, fmt.Errorf(format, args...))
}

// topics returns every topic the group touches, to catch one used twice.
func (g *Group[V]) usesTopic(topic string) (string, bool) {
	for _, in := range g.inputs {
		if in.topic == topic {
			if in.loop {
				return "loopback", true
			}
			return "input", true
		}
	}
	if _, ok := g.outputs[topic]; ok {
		return "output", true
	}
	for _, t := range append(slices.Clone(g.joins), g.lookups...) {
		if t.topic == topic {
			return t.kind, true
		}
	}
	if g.Persisted() && topic == g.TableTopic() {
		return "table", true
	}
	if g.windowLogged() && topic == g.WindowsTopic() {
		return "windows topic", true
	}
	return "", false
}

// checkOwnTopics checks, for an edge that makes the group keep its table
// topic (table) or its windows topic (windows), that no edge declared
// before it uses that topic: edges declared after it are checked by
// checkTopic.
func (g *Group[V]) checkOwnTopics(edge string, table, windows bool) bool {
	ok := true
	for _, own := range []struct {
		topic, what string
		check       bool
	}{{g.TableTopic(), "table", table}, {g.WindowsTopic(), "windows topic", windows}} {
		if !own.check {
			continue
		}
		if other, used := g.usesTopic(own.topic); used {
			g.fail("%s: the group's %s %s is already its %s", edge, own.what, own.topic, other)
			ok = false
		}
	}
	return ok
}

func (g *Group[V]) checkTopic(edge, topic string) bool {
	if err := checkTopicName(topic); err != nil {
		g.fail("%s: %v", edge, err)
		return false
	}
	if other, ok := g.usesTopic(topic); ok {
		g.fail("%s %s: topic is already the group's %s", edge, topic, other)
		return false
	}
	return true
}

// Persist makes the group keep a table of rows of type V, encoded with c,
// in its local store and in the compacted topic g.TableTopic().
func Persist[V any](g *Group[V], c codec.Codec[V]) {
	switch {
	case c == nil:
		g.fail("persist: codec is nil")
	case g.table != nil:
		g.fail("persist: the group already persists a table")
	case g.checkOwnTopics("persist", !g.Persisted(), false):
		g.table = c
	}
}

// Input makes the group read topic, decoding each value with c and passing
// it to h. Records of one partition are handled one at a time in offset
// order. opts configure the input (RecordTime).
func Input[V, M any](g *Group[V], topic string, c codec.Codec[M], h Handler[V, M], opts ...InputOpt[M]) {
	edge := "input"
	if c == nil || h == nil {
		g.fail("input %s: codec and handler must not be nil", topic)
		return
	}
	if !g.checkTopic(edge, topic) {
		return
	}
	var cfg inputConfig[M]
	for _, o := range opts {
		if o != nil {
			o.applyInput(&cfg)
		}
	}
	in := &inputEdge[V]{topic: topic, decode: decodeAndHandle(c, h), codec: c}
	if cfg.timeOf != nil {
		in.decodeAt = decodeAtTime(c, cfg.timeOf, h)
	}
	g.inputs = append(g.inputs, in)
}

// Loop makes the group read its own loopback topic, g.LoopTopic(), with h.
// Records sent with the returned handle's Loopback are keyed by their
// destination key, so they are handled by the task that owns that key's row.
// A group has at most one loopback.
func Loop[V, M any](g *Group[V], c codec.Codec[M], h Handler[V, M]) *LoopTopic[M] {
	l := &LoopTopic[M]{topic: g.LoopTopic(), codec: c, owner: g}
	if c == nil || h == nil {
		g.fail("loopback: codec and handler must not be nil")
		return l
	}
	if !g.checkTopic("loopback", g.LoopTopic()) {
		return l
	}
	g.inputs = append(g.inputs, &inputEdge[V]{topic: l.topic, loop: true, decode: decodeAndHandle(c, h), codec: c})
	return l
}

// Output declares that the group writes records of type T, encoded with c,
// to topic. The returned handle's Emit is the only way to write them.
func Output[V, T any](g *Group[V], topic string, c codec.Codec[T]) *OutputTopic[T] {
	o := &OutputTopic[T]{topic: topic, codec: c, owner: g}
	if c == nil {
		g.fail("output %s: codec is nil", topic)
		return o
	}
	if g.checkTopic("output", topic) {
		g.outputs[topic] = &outputEdge{topic: topic}
	}
	return o
}

// Join declares a co-partitioned table the group reads: partition p of
// table is kept locally by the task of partition p, so a handler can read
// the row of its own key with the returned handle's Get. The table's
// partition count must equal the inputs'.
func Join[V, T any](g *Group[V], table string, c codec.Codec[T]) *JoinedTable[T] {
	j := &JoinedTable[T]{topic: table, codec: c}
	if c == nil {
		g.fail("join %s: codec is nil", table)
		return j
	}
	if g.checkTopic("join", table) {
		g.joins = append(g.joins, &tableEdge{topic: table, kind: "join"})
	}
	return j
}

// Lookup declares a table the group reads in full: every process keeps a
// copy of all its partitions, shared by the group's processors running in
// it, so a handler can read any key with the returned handle's Get.
func Lookup[V, T any](g *Group[V], table string, c codec.Codec[T]) *LookupTable[T] {
	l := &LookupTable[T]{topic: table, codec: c}
	if c == nil {
		g.fail("lookup %s: codec is nil", table)
		return l
	}
	if g.checkTopic("lookup", table) {
		g.lookups = append(g.lookups, &tableEdge{topic: table, kind: "lookup"})
	}
	return l
}

// decodeInput decodes b, a key or value of an input record or a row of a
// joined or lookup table, with c. A codec that panics on b returns an error
// as one that fails does: b did not decode, whatever the codec's way of
// saying so.
func decodeInput[M any](c codec.Codec[M], b []byte) (msg M, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("codec panicked: %v", v)
		}
	}()
	return c.Decode(b)
}

func decodeAndHandle[V, M any](c codec.Codec[M], h Handler[V, M]) func(*Context[V], []byte) error {
	return func(ctx *Context[V], value []byte) error {
		msg, err := decodeInput(c, value)
		if err != nil {
			r := ctx.rec
			return &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		return h(ctx, msg)
	}
}

// inputTopics returns the topics the group consumes, in definition order.
func (g *Group[V]) inputTopics() []string {
	topics := make([]string, len(g.inputs))
	for i, in := range g.inputs {
		topics[i] = in.topic
	}
	return topics
}

func formatCounts(counts map[string]int32) string {
	var b strings.Builder
	for i, topic := range slices.Sorted(maps.Keys(counts)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", topic, counts[topic])
	}
	return b.String()
}
