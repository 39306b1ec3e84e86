// Package progress draws a progress bar for long-running commands: how much
// of a known total is done, the rate and the time left.
//
//	bar := progress.New(os.Stderr, size, "B")
//	for ... {
//		bar.Add(int64(n))
//		bar.AddRecords(1)
//	}
//	bar.Done()
//
// On a terminal the bar is redrawn in place with a carriage return, at most
// ten times a second. On anything else (a file, a pipe, a log collector) it
// writes a plain line every ten seconds instead, so that logs stay readable.
// Done always writes the final state on a line of its own. A Bar is safe for
// concurrent use, and a nil *Bar does nothing, so callers can leave it unset
// when no progress is wanted.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

const (
	terminalEvery = 100 * time.Millisecond
	lineEvery     = 10 * time.Second
	barWidth      = 24
)

// Bar reports progress towards a total on a writer.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	total    int64
	unit     string
	terminal bool
	now      func() time.Time

	done    int64
	records int64
	start   time.Time
	drawn   time.Time // when the bar was last written
	width   int       // length of the last line drawn on a terminal
	stopped bool
}

// New returns a bar for total units of work written to w. A unit of "B"
// shows amounts as bytes (KiB, MiB, …); any other unit is shown after plain
// numbers. A total of zero or less means unknown: the bar then shows the
// amount and rate without a percentage or time left.
func New(w io.Writer, total int64, unit string) *Bar {
	now := time.Now()
	return &Bar{
		w:        w,
		total:    total,
		unit:     unit,
		terminal: IsTerminal(w),
		now:      time.Now,
		start:    now,
		drawn:    now,
	}
}

// IsTerminal reports whether w is a terminal. Other character devices,
// such as /dev/null, are not.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add records n more units of work done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.maybeDraw()
}

// Set records that n units of work are done in all.
func (b *Bar) Set(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = n
	b.maybeDraw()
}

// AddRecords counts n more records handled, shown as a records-per-second
// rate next to the bar. Bars that never count records do not show it.
func (b *Bar) AddRecords(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records += n
	b.maybeDraw()
}

// Done writes the final state and ends the line. Later calls do nothing.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.stopped = true
	b.draw(b.now())
	if b.terminal {
		fmt.Fprintln(b.w)
	}
}

func (b *Bar) maybeDraw() {
	if b.stopped {
		return
	}
	every := lineEvery
	if b.terminal {
		every = terminalEvery
	}
	if now := b.now(); now.Sub(b.drawn) >= every {
		b.draw(now)
	}
}

func (b *Bar) draw(now time.Time) {
	b.drawn = now
	line := b.line(now.Sub(b.start))
	if !b.terminal {
		fmt.Fprintln(b.w, line)
		return
	}
	// Pad with spaces over the rest of a longer previous line.
	pad := b.width - len(line)
	b.width = len(line)
	fmt.Fprintf(b.w, "\r%s%s", line, strings.Repeat(" ", max(pad, 0)))
}

// line renders the state after elapsed time.
func (b *Bar) line(elapsed time.Duration) string {
	var s strings.Builder
	secs := elapsed.Seconds()
	if b.total > 0 {
		frac := min(float64(b.done)/float64(b.total), 1)
		filled := int(frac * barWidth)
		fmt.Fprintf(&s, "[%s%s] %3.0f%% %s / %s", strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled),
			frac*100, b.amount(b.done), b.amount(b.total))
	} else {
		s.WriteString(b.amount(b.done))
	}
	if secs > 0 {
		fmt.Fprintf(&s, "  %s/s", b.amount(int64(float64(b.done)/secs)))
		if b.records > 0 {
			fmt.Fprintf(&s, "  %.0f records/s", float64(b.records)/secs)
		}
	}
	if b.stopped {
		fmt.Fprintf(&s, "  in %s", elapsed.Round(time.Millisecond))
	} else if b.total > 0 && b.done > 0 && b.done < b.total {
		left := time.Duration(float64(elapsed) * float64(b.total-b.done) / float64(b.done))
		fmt.Fprintf(&s, "  ETA %s", left.Round(time.Second))
	}
	return s.String()
}

// amount formats n in the bar's unit.
func (b *Bar) amount(n int64) string {
	if b.unit != "B" {
		if b.unit == "" {
			return fmt.Sprint(n)
		}
		return fmt.Sprintf("%d %s", n, b.unit)
	}
	return Bytes(n)
}

// Bytes formats n bytes with a binary unit: 512 B, 1.5 KiB, 3.2 MiB.
func Bytes(n int64) string {
	const k = 1024
	if n < k {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / k
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if v < k {
			return fmt.Sprintf("%.1f %s", v, u)
		}
		v /= k
	}
	return fmt.Sprintf("%.1f PiB", v)
}

// SetTotal changes the total, for work whose size becomes known bit by bit.
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = total
}
