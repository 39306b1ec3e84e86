package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// slogAdapter is the kfake.Logger of a broker. kfake reports the failures of
// its shutdown only by logging them, so the adapter also collects the errors
// logged while the broker closes, for Close to return.
type slogAdapter struct {
	l *slog.Logger

	mu        sync.Mutex
	capturing bool
	errs      []error
}

func (a *slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelDebug
	}
	if level == kfake.LogLevelError {
		a.mu.Lock()
		if a.capturing {
			a.errs = append(a.errs, fmt.Errorf(format, args...))
		}
		a.mu.Unlock()
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return
	}
	a.l.Log(ctx, sl, fmt.Sprintf(format, args...), "component", "kfake")
}

// captureErrors starts collecting the errors kfake logs.
func (a *slogAdapter) captureErrors() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.capturing = true
}

// capturedErrors stops collecting and returns what was collected, joined.
func (a *slogAdapter) capturedErrors() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.capturing = false
	err := errors.Join(a.errs...)
	a.errs = nil
	return err
}
