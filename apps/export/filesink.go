package export

// FileSink writes JSON Lines files into a directory. A call is accepted once
// its lines are written and synced to disk, so that an accepted event
// survives a crash of the machine. The file being written has the suffix
// ".jsonl.open"; at rotation (by size, by age) or close it is renamed to
// ".jsonl", so that a reader of the directory takes only finished files.
// A failed write is cut off the file again, and a file left open by a crash
// is cut back to its last whole line and finished when the next FileSink
// opens the directory: its torn tail was never accepted, so it is sent
// again.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FileSinkConfig configures NewFileSink.
type FileSinkConfig struct {
	// Dir is the directory the files are written in; it is created if
	// missing.
	Dir string
	// Prefix begins the files' names, which go on with the UTC time the
	// file was opened at and a sequence number. Default "events".
	Prefix string
	// MaxFileBytes is the size past which a new file is started: a call
	// goes to a new file if it would make the current one larger. A call
	// larger than MaxFileBytes has a file of its own. Default 64 MiB.
	MaxFileBytes int64
	// MaxFileAge is how long a file is written before it is finished and a
	// new one is started, even if it is small. Default 1m.
	MaxFileAge time.Duration
}

// FileSink is a Sink that writes JSON Lines files, rotated by size and age.
// Close it to finish its last file.
type FileSink struct {
	cfg FileSinkConfig

	mu     sync.Mutex
	f      *os.File
	name   string // of the open file, without the ".open" suffix
	size   int64
	seq    int
	timer  *time.Timer
	closed bool
}

const openSuffix = ".open"

// NewFileSink opens a file sink on cfg.Dir, finishing the files a crash
// left open there.
func NewFileSink(cfg FileSinkConfig) (*FileSink, error) {
	if cfg.Dir == "" {
		return nil, errors.New("file sink: no directory")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "events"
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 64 << 20
	}
	if cfg.MaxFileAge <= 0 {
		cfg.MaxFileAge = time.Minute
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	left, err := filepath.Glob(filepath.Join(cfg.Dir, cfg.Prefix+"-*.jsonl"+openSuffix))
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	for _, name := range left {
		if err := finishTorn(name); err != nil {
			return nil, fmt.Errorf("file sink: finish %s: %w", name, err)
		}
	}
	return &FileSink{cfg: cfg}, nil
}

// finishTorn cuts a file left open back to its last whole line and
// finishes it (or removes it when no line is whole).
func finishTorn(open string) error {
	data, err := os.ReadFile(open)
	if err != nil {
		return err
	}
	n := bytes.LastIndexByte(data, '\n') + 1
	if n == 0 {
		return os.Remove(open)
	}
	if err := os.Truncate(open, int64(n)); err != nil {
		return err
	}
	return os.Rename(open, strings.TrimSuffix(open, openSuffix))
}

// Put appends the records' lines to the current file and syncs it. The
// call is accepted or failed as a whole.
func (s *FileSink) Put(_ context.Context, records []Record) ([]error, error) {
	n := 0
	for _, r := range records {
		n += len(r.Data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("file sink: closed")
	}
	if s.f != nil && s.size > 0 && s.size+int64(n) > s.cfg.MaxFileBytes {
		if err := s.finish(); err != nil {
			return nil, err
		}
	}
	if s.f == nil {
		if err := s.open(); err != nil {
			return nil, err
		}
	}
	err := s.write(records)
	if err != nil {
		// Cut the call off again, so that the file holds whole lines of
		// accepted calls only, and the retry does not duplicate them.
		if terr := s.f.Truncate(s.size); terr != nil {
			err = errors.Join(err, terr)
		}
		if _, serr := s.f.Seek(s.size, io.SeekStart); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("file sink: write %s: %w", s.name, err)
	}
	s.size += int64(n)
	return nil, nil
}

func (s *FileSink) write(records []Record) error {
	for _, r := range records {
		if _, err := s.f.Write(r.Data); err != nil {
			return err
		}
	}
	return s.f.Sync()
}

// open starts a new file; s.mu is held.
func (s *FileSink) open() error {
	s.seq++
	name := filepath.Join(s.cfg.Dir, fmt.Sprintf("%s-%s-%06d.jsonl", s.cfg.Prefix, time.Now().UTC().Format("20060102T150405.000Z"), s.seq))
	f, err := os.OpenFile(name+openSuffix, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.f, s.name, s.size = f, name, 0
	s.timer = time.AfterFunc(s.cfg.MaxFileAge, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.f == f {
			// A file that fails to finish now is finished by the next
			// call's rotation or by Close, which report the error.
			_ = s.finish()
		}
	})
	return nil
}

// finish closes the current file and gives it its final name; s.mu is
// held. An empty file is removed instead.
func (s *FileSink) finish() error {
	if s.f == nil {
		return nil
	}
	s.timer.Stop()
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: close %s: %w", s.name, err)
	}
	s.f = nil
	if s.size == 0 {
		if err := os.Remove(s.name + openSuffix); err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		return nil
	}
	if err := os.Rename(s.name+openSuffix, s.name); err != nil {
		return fmt.Errorf("file sink: finish %s: %w", s.name, err)
	}
	return nil
}

// Close finishes the current file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.finish()
}
