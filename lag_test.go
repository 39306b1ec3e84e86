package sluice_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// inputStatus returns the position of the only partition of a processor
// with one input, once it was measured.
func inputStatus(p *sluice.Processor[int64]) (sluice.InputStatus, error) {
	s := p.Stats()
	if len(s.Partitions) != 1 || len(s.Partitions[0].Inputs) != 1 {
		return sluice.InputStatus{}, fmt.Errorf("lag not measured yet: %+v", s.Partitions)
	}
	return s.Partitions[0].Inputs[0], nil
}

// Before the group commits anything, Stats says Committed -1 and counts the
// lag from the partition's first record; once it commits, the lag is the
// high watermark minus the committed offset.
func TestStatsLagCountsFromTheFirstRecordUntilTheFirstCommit(t *testing.T) {
	b := startBroker(t)
	em := newEmitter(t, "lag-in", emitterOpts(b, 1))
	emitAll(t, em, "a", "1", "b", "2", "c", "3")
	release := make(chan struct{})
	g := sluice.DefineGroup[int64]("lagger")
	sluice.Persist(g, codec.Int64())
	sluice.Input(g, "lag-in", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
		<-release
		return nil
	})
	p, err := sluice.NewProcessor(g, processorOpts(b, 1, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	waitFor(t, 30*time.Second, func() error {
		in, err := inputStatus(p)
		if err == nil && (in.Committed != -1 || in.HighWatermark != 3 || in.Lag != 3) {
			err = fmt.Errorf("before any commit: %+v, want committed -1, high watermark 3, lag 3", in)
		}
		return err
	})
	close(release)
	emitAll(t, em, "d", "4")
	waitFor(t, 30*time.Second, func() error {
		in, err := inputStatus(p)
		if err == nil && (in.Committed != 4 || in.HighWatermark != 4 || in.Lag != 0) {
			err = fmt.Errorf("after the commit: %+v, want committed 4, high watermark 4, lag 0", in)
		}
		return err
	})
	r.stop(t)
}
