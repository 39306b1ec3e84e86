package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// quietLogger keeps Pebble from writing to the standard logger: a library
// must not print. Errors that matter reach the caller through the returned
// errors of Get, Apply, Iter and Close instead.
//
// Fatalf panics instead of staying quiet, because Pebble calls it only when
// it cannot go on (a corrupt table, a failed MANIFEST write) and relies on it
// not returning; Pebble's own default exits the process.
type quietLogger struct{}

var _ pebbledb.LoggerAndTracer = quietLogger{}

func (quietLogger) Infof(string, ...any)                   {}
func (quietLogger) Errorf(string, ...any)                  {}
func (quietLogger) Eventf(context.Context, string, ...any) {}
func (quietLogger) IsTracingEnabled(context.Context) bool  { return false }
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble store: fatal: "+format, args...))
}
