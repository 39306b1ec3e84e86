package export

// Flush: run the export until the events pending when it started are
// accepted, then stop.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-io/sluice"
)

// flushPoll is how often Flush looks at the pending rows.
const flushPoll = 200 * time.Millisecond

// Flush runs the export as Run does until every event that was pending in
// the group's table when it started has been accepted by the sink and its
// row cleared, and then stops it. It reads the table with a view of its
// changelog, so it sees a row cleared once the clearing is committed.
// Updates that come meanwhile are processed as by Run; their events are
// not waited for. progress, if set, is called with the cleared and the
// total pending events as they clear. With a Topic nothing is pending, and
// Flush returns at once.
func Flush(ctx context.Context, cfg Config, progress func(done, total int)) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	if cfg.Topic != "" {
		return nil
	}
	name := cfg.Group.Name
	if name == "" {
		name = DefaultGroup
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v, err := sluice.NewView(name+"-table", PendingCodec(), sluice.Brokers(cfg.Brokers...), sluice.Logger(logger),
		sluice.TopicWait(5*time.Second))
	if err != nil {
		return fmt.Errorf("export: flush: %w", err)
	}
	vctx, stopView := context.WithCancel(ctx)
	defer stopView()
	viewDone := make(chan error, 1)
	go func() { viewDone <- v.Run(vctx) }()
	if err := v.WaitReady(ctx); err != nil {
		if errors.Is(err, sluice.ErrTopicNotFound) {
			return nil // the export never ran: nothing is pending
		}
		return fmt.Errorf("export: flush: read the table: %w", err)
	}
	pending := map[string]map[time.Time]bool{}
	total := 0
	err = v.Iterate("", "", func(key string, p Pending) bool {
		for _, b := range p.Buckets {
			if pending[key] == nil {
				pending[key] = map[time.Time]bool{}
			}
			pending[key][b.End.UTC()] = true
			total++
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("export: flush: read the table: %w", err)
	}
	if progress != nil {
		progress(0, total)
	}
	if total == 0 {
		return nil
	}
	rctx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- Run(rctx, cfg) }()
	stop := func() error {
		stopRun()
		return <-runDone
	}
	tick := time.NewTicker(flushPoll)
	defer tick.Stop()
	left := total
	for left > 0 {
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("export: flush: %d of %d pending events not accepted: %w", left, total, ctx.Err()), stop())
		case err := <-runDone:
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("export: flush: %w", err)
		case err := <-viewDone:
			return errors.Join(fmt.Errorf("export: flush: view of the table: %w", err), stop())
		case <-tick.C:
		}
		for key, ends := range pending {
			p, err := v.Get(key)
			if err != nil && !errors.Is(err, sluice.ErrNotFound) {
				return errors.Join(fmt.Errorf("export: flush: %w", err), stop())
			}
			still := map[time.Time]bool{}
			for _, b := range p.Buckets {
				if ends[b.End.UTC()] {
					still[b.End.UTC()] = true
				}
			}
			left -= len(ends) - len(still)
			if len(still) == 0 {
				delete(pending, key)
			} else {
				pending[key] = still
			}
		}
		if progress != nil {
			progress(total-left, total)
		}
	}
	return stop()
}
