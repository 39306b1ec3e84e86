package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// clock is a manual clock for bars under test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newTestBar(w *bytes.Buffer, total int64, unit string, terminal bool) (*Bar, *clock) {
	c := &clock{t: time.Unix(1000, 0)}
	b := New(w, total, unit)
	b.terminal = terminal
	b.now = c.now
	b.start, b.drawn = c.t, c.t
	return b, c
}

func TestBarRedrawsInPlaceOnATerminal(t *testing.T) {
	var out bytes.Buffer
	b, c := newTestBar(&out, 4096, "B", true)
	c.advance(time.Second)
	b.Add(1024)
	b.AddRecords(10)
	c.advance(time.Second)
	b.Add(1024)
	first, _, _ := strings.Cut(strings.TrimPrefix(out.String(), "\r"), "\r")
	if want := "[======                  ]  25% 1.0 KiB / 4.0 KiB  1.0 KiB/s  ETA 3s"; first != want {
		t.Errorf("first draw %q, want %q", first, want)
	}
	b.Done()
	b.Done()
	lines := strings.Split(out.String(), "\r")
	last := strings.TrimRight(lines[len(lines)-1], " \n")
	if want := "[============            ]  50% 2.0 KiB / 4.0 KiB  1.0 KiB/s  5 records/s  in 2s"; last != want {
		t.Errorf("final draw %q, want %q", last, want)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("want one line end, after Done:\n%q", out.String())
	}
}

func TestBarDrawsAtMostTenTimesASecondOnATerminal(t *testing.T) {
	var out bytes.Buffer
	b, c := newTestBar(&out, 100, "records", true)
	for range 50 {
		c.advance(10 * time.Millisecond)
		b.Add(1)
	}
	if n := strings.Count(out.String(), "\r"); n != 5 {
		t.Errorf("drawn %d times in 500ms, want 5:\n%q", n, out.String())
	}
}

func TestBarWritesOccasionalLinesWhenNotATerminal(t *testing.T) {
	var out bytes.Buffer
	b, c := newTestBar(&out, 0, "records", false)
	for range 25 {
		c.advance(time.Second)
		b.Add(2)
	}
	b.Done()
	want := "20 records  2 records/s\n40 records  2 records/s\n50 records  2 records/s  in 25s\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
	if strings.Contains(out.String(), "\r") {
		t.Error("carriage return written to a non-terminal")
	}
}

func TestNilBarDoesNothing(t *testing.T) {
	var b *Bar
	b.Add(1)
	b.Set(2)
	b.AddRecords(1)
	b.Done()
}

func TestBytesUsesBinaryUnits(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIsTerminalIsFalseForBuffers(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}

// /dev/null is a character device, but not a terminal.
func TestIsTerminalIsFalseForDevNullAndPipes(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if IsTerminal(null) {
		t.Errorf("%s is not a terminal", os.DevNull)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Error("a pipe is not a terminal")
	}
}
