package sluice_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
)

// legacyWindowRow is the key of key's window [start,end) (Unix seconds) of
// aggregation name, as a group's table topic held it before the group had
// a windows topic.
func legacyWindowRow(name, key string, start, end int64) string {
	b := append([]byte(windowRowPrefix), name...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(end*int64(time.Second))^(1<<63))
	b = binary.BigEndian.AppendUint64(b, uint64(start*int64(time.Second))^(1<<63))
	return string(append(b, key...))
}

// TestWindowsATableTopicHoldsAreRestoredAndCloseOnce starts the window
// tests' group on a table topic laid out as it was before windows had a
// topic of their own: its window rows, cursor and stream time are table
// rows. The processor restores them, closes them once with their counts,
// writes its windows to the windows topic, and a restore on an empty
// state dir afterwards loads none of the table's windows it has purged.
func TestWindowsATableTopicHoldsAreRestoredAndCloseOnce(t *testing.T) {
	const keys = 4
	b := startBroker(t, broker.AllowAutoTopicCreation(), broker.Partitions(1))
	cl := mustClient(t, kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("wresults"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "wcounts-table"); err != nil {
		t.Fatal(err)
	}
	put := func(key string, value []byte) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "wcounts-table", Key: []byte(key), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Each key had two records in [0,10), closed (the cursor is at its
	// last key's row) and kept until 20s, and two in [10,20); stream time
	// is 13s.
	for k := range keys {
		put(legacyWindowRow("n", fmt.Sprintf("k%d", k), 0, 10), []byte("2"))
		put(legacyWindowRow("n", fmt.Sprintf("k%d", k), 10, 20), []byte("2"))
	}
	put("\x00sluice\x00cn", []byte(legacyWindowRow("n", fmt.Sprintf("k%d", keys-1), 0, 10)))
	put("\x00sluice\x00st", binary.BigEndian.AppendUint64(nil, uint64(13*time.Second)))

	start := func(dir string) (*sluice.Processor[struct{}], *running) {
		t.Helper()
		p, err := sluice.NewProcessor(windowCounts(), processorOpts(b, 1, dir)...)
		if err != nil {
			t.Fatal(err)
		}
		return p, runInBackground(t, p.Run)
	}
	p1, r1 := start(t.TempDir())
	for _, sec := range []int64{15, 21, 31, 100} {
		for k := range keys {
			r := &kgo.Record{Topic: "wclicks", Key: fmt.Appendf(nil, "k%d", k), Value: []byte("click"), Timestamp: time.Unix(sec, 0)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var want, got []string
	for k := range keys {
		for _, w := range []string{"10 3", "20 1", "30 1"} {
			want = append(want, fmt.Sprintf("k%d %s", k, w))
		}
	}
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("results so far %q, want %q", got, want)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	waitFor(t, 30*time.Second, func() error {
		if n := p1.Stats().Consumed; n < 4*keys {
			return fmt.Errorf("consumed %d of %d", n, 4*keys)
		}
		return nil
	})
	r1.stop(t)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("results %q, want %q: the table's windows closed once each, with their counts", got, want)
	}

	dir := t.TempDir()
	p2, r2 := start(dir)
	waitFor(t, 60*time.Second, func() error {
		s := p2.Stats()
		if len(s.Partitions) != 1 || s.Partitions[0].State != "running" {
			return fmt.Errorf("%d partitions, not running", len(s.Partitions))
		}
		return nil
	})
	r2.stop(t)
	expectOnlyWindowsEndingAt(t, windowedRows(t, dir, "wcounts-table", 1), 110, keys)
}
