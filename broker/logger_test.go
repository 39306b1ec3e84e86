package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer that the broker's goroutines may write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBrokerLogsKfakeMessagesAtDebugLevel(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf syncBuffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		b, err := Start(t.Context(), Logger(logger), DataDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		// kfake logs what it saves on shutdown at its debug level.
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		logged := strings.Contains(buf.String(), `level=DEBUG msg="saveSessionState`)
		if want := level == slog.LevelDebug; logged != want {
			t.Errorf("logger at %v: kfake's debug message logged %v, want %v:\n%s", level, logged, want, buf.String())
		}
	}
}

func TestStartReturnsWhenContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b, err := Start(ctx, DataDir(t.TempDir()))
	if err == nil {
		b.Close()
		t.Fatal("Start with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: %v, want context.Canceled", err)
	}
}
