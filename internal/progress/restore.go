package progress

import (
	"context"
	"io"
	"time"
)

// RestoreState is how far restoring a table is: records read so far of the
// total known, and whether any partition is still restoring.
type RestoreState struct {
	Restored, Total int64
	Restoring       bool
}

// WatchRestore draws a bar on w while state says a restore is under way,
// polling it every interval, and returns when the restore is over (Done is
// written) or ctx is done. Nothing is drawn when there is nothing to
// restore.
func WatchRestore(ctx context.Context, w io.Writer, interval time.Duration, state func() RestoreState) {
	var bar *Bar
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s := state()
		switch {
		case s.Restoring && bar == nil && s.Total > 0:
			bar = New(w, s.Total, "records")
			fallthrough
		case s.Restoring && bar != nil:
			bar.SetTotal(s.Total)
			bar.Set(s.Restored)
		case !s.Restoring && bar != nil:
			bar.SetTotal(s.Total)
			bar.Set(s.Restored)
			bar.Done()
			return
		}
		select {
		case <-ctx.Done():
			bar.Done()
			return
		case <-t.C:
		}
	}
}
