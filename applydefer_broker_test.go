package sluice_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// At least once the rows of a write wait to be applied with the next
// writes': with no next write, they and the write's offsets still reach the
// store and the group's commit while the processor runs.
func TestAtLeastOnceAppliesAndCommitsTheLastWriteWhileNoMoreRecordsCome(t *testing.T) {
	b := startBroker(t)
	var mu sync.Mutex
	var st store.Store
	builder := func(string, int32) (store.Store, error) {
		mu.Lock()
		defer mu.Unlock()
		st = memory.New()
		return st, nil
	}
	g := sluice.DefineGroup[int64]("waiting")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "waiting-in", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
		n, _ := ctx.Value()
		ctx.SetValue(n + 1)
		return nil
	})
	opts := processorOpts(b, 1, t.TempDir())
	opts = append(opts, sluice.Storage(builder), sluice.CommitInterval(time.Second))
	runProcessor(t, g, opts...)
	produceKV(t, b, "waiting-in", "k1=a", "k2=b", "k1=c")

	adm := admin(t, b)
	want := map[string]int64{"k1": 2, "k2": 1}
	waitFor(t, 20*time.Second, func() error {
		mu.Lock()
		s := st
		mu.Unlock()
		if s == nil {
			return errors.New("no store yet")
		}
		for k, n := range want {
			v, err := s.Get([]byte(k))
			if err != nil {
				return fmt.Errorf("row %s: %w", k, err)
			}
			got, err := codec.Int64().Decode(v)
			if err != nil || got != n {
				return fmt.Errorf("row %s = %s, want %s", k, v, strconv.FormatInt(n, 10))
			}
		}
		// Two or three changelog records: k1's two changes may be one.
		if off, err := s.Offset(); err != nil || off < 2 {
			return fmt.Errorf("store checkpoint %d (%v), want the changelog's end", off, err)
		}
		if c := committed(t, adm, "waiting", "waiting-in"); c != 3 {
			return fmt.Errorf("committed offset %d, want 3", c)
		}
		return nil
	})
}
