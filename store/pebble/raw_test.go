package pebble_test

import (
	"context"
	"errors"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/sluice-io/sluice/store"
)

// rawPebble is the least a store.Store over Pebble can do for Apply, for
// benchmarks to compare against; its other methods are not needed there.
type rawPebble struct{ db *pebbledb.DB }

var errUnsupported = errors.New("not supported by the benchmark baseline")

func (r rawPebble) Apply(changes []store.Change, offset int64) error {
	b := r.db.NewBatch()
	defer b.Close()
	for _, c := range changes {
		if c.Value == nil {
			_ = b.Delete(c.Key, nil)
		} else {
			_ = b.Set(c.Key, c.Value, nil)
		}
	}
	return b.Commit(pebbledb.NoSync)
}

func (r rawPebble) Close() error                           { return r.db.Close() }
func (rawPebble) Get([]byte) ([]byte, error)               { return nil, errUnsupported }
func (rawPebble) Offset() (int64, error)                   { return 0, errUnsupported }
func (rawPebble) Iter(_, _ []byte) (store.Iterator, error) { return nil, errUnsupported }
func (rawPebble) Clear() error                             { return errUnsupported }

type quiet struct{}

func (quiet) Infof(string, ...any)                   {}
func (quiet) Errorf(string, ...any)                  {}
func (quiet) Fatalf(string, ...any)                  { panic("pebble fatal") }
func (quiet) Eventf(context.Context, string, ...any) {}
func (quiet) IsTracingEnabled(context.Context) bool  { return false }
