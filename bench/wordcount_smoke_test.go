package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestWordCountSidesReportEveryWordInOrder runs both sides of
// BenchmarkWordCount at a small size and checks that each produced, for
// every word, the texts "<word> has been seen 0 times", "… 1 times", ... in
// order, one per occurrence, and nothing else.
func TestWordCountSidesReportEveryWordInOrder(t *testing.T) {
	want := make(map[string]int64, vocabulary)
	for _, w := range words(smokeRecords) {
		want[string(w)]++
	}
	for name, side := range wordSides {
		t.Run(name, func(t *testing.T) {
			br := startBroker(t)
			fillWords(t, br, smokeRecords)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stop, stats, err := side(ctx, t, br, smokeRecords)
			if err != nil {
				t.Fatal(err)
			}
			stop()
			output := wordOutputOf(name)
			seen := make(map[string]int64, vocabulary)
			readTopic(t, br, output, func(r *kgo.Record) {
				w := string(r.Key)
				if got, want := string(r.Value), string(seenText(nil, r.Key, seen[w])); got != want {
					t.Fatalf("%s: %q follows %d texts of %s, want %q", output, got, seen[w], w, want)
				}
				seen[w]++
			})
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Fatalf("%s: counts of %d words differ from the input's %d", output, len(seen), len(want))
			}
			if stats != nil {
				if s := stats(); s.Records != smokeRecords || s.Batches < smokeRecords/wordBatch {
					t.Fatalf("sluice handled %d records in %d batches, want %d in at least %d",
						s.Records, s.Batches, smokeRecords, smokeRecords/wordBatch)
				}
			}
		})
	}
}
