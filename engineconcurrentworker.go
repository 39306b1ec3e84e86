package sluice

// What the workers of concurrent inputs (engineconcurrent.go) run and see:
// the handler call, and the taskIO of its Context, which holds no engine.

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/store"
)

// run is a worker: it runs the handler of c and hands c back.
func (cc *ccEngine[V]) run(in *inputEdge[V], c *ccRecord, io *ccIO[V], logs *slog.Logger) {
	defer cc.wg.Done()
	ctx := &Context[V]{recordCtx: recordCtx{ctx: cc.ctx, rec: c.r, key: c.key, io: io, logs: logs}}
	err := callConcurrent(in, ctx, c.r)
	if err == nil {
		err = ctx.err
	}
	c.err = err
	cc.done <- c
}

// callConcurrent runs the handler, turning a panic into an error.
func callConcurrent[V any](in *inputEdge[V], ctx *Context[V], r *kgo.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return in.decode(ctx, r.Value)
}

// ccReady is a heap of records free to run, lowest offset first, so that
// the lowest unfinished record, which holds back the commit, runs first.
type ccReady []*ccRecord

func (h ccReady) Len() int           { return len(h) }
func (h ccReady) Less(i, j int) bool { return h[i].r.Offset < h[j].r.Offset }
func (h ccReady) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *ccReady) Push(x any)        { *h = append(*h, x.(*ccRecord)) }
func (h *ccReady) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return c
}

// ccIO is the taskIO of a concurrent handler: its emits go to its record,
// and it reads only what no one changes while it runs (the configuration)
// or what is safe for concurrent reads (the joined stores and lookups).
type ccIO[V any] struct {
	cfg   *engineConfig[V]
	joins map[string]store.Store
	c     *ccRecord
}

func (io *ccIO[V]) group() string { return io.cfg.group.name }

func (io *ccIO[V]) emit(owner any, r *kgo.Record) error {
	if owner != any(io.cfg.group) {
		return fmt.Errorf("group %s does not declare output %s (its handle belongs to another group)", io.cfg.group.name, r.Topic)
	}
	io.c.out = append(io.c.out, r)
	return nil
}

func (io *ccIO[V]) joined(topic string) (store.Store, error) {
	st, ok := io.joins[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not join table %s", io.cfg.group.name, topic)
	}
	return st, nil
}

func (io *ccIO[V]) lookup(topic string) (*tableView, error) {
	tv, ok := io.cfg.lookups[topic]
	if !ok {
		return nil, fmt.Errorf("group %s does not look up table %s", io.cfg.group.name, topic)
	}
	return tv, nil
}

func (io *ccIO[V]) streamTime() time.Time { return io.c.stream }

// addToWindows fails: windows are table rows, which a group with a
// concurrent input does not have (Validate).
func (io *ccIO[V]) addToWindows(any, int, string, Point, windowFold) error {
	return errConcurrentRow
}

// handledFor observes the handler time of one record of topic that began at
// start, for records that did not run in the task's goroutine.
func (m *taskMetrics) handledFor(topic string, start time.Time) {
	if im := m.inputs[topic]; im != nil {
		im.handler.Observe(time.Since(start).Seconds())
	}
}
