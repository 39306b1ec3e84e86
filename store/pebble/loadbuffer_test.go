package pebble

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// sorted must order the changes by key, keep the last change of each, and
// not be misled by keys whose bytes it sorts by alike: keys that share long
// prefixes, that are prefixes of each other, end in zero bytes, or are
// empty, and changes larger than a block.
func TestLoadBufferSortsByKeyAndKeepsTheLastChangeOfEach(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	pools := map[string][]string{
		"binary":        {"", "\x00", "\x00\x00", "\x00\x00\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x01", "a", "a\x00", "ab", "\xff", "\xff\xff\xff\xff\xff\xff"},
		"shared prefix": nil,
		"one key":       {"only"},
	}
	for i := range 3000 {
		pools["shared prefix"] = append(pools["shared prefix"], fmt.Sprintf("tenant-42/user-%d", i*37%2000))
	}
	for name, pool := range pools {
		t.Run(name, func(t *testing.T) {
			var b loadBuffer
			for round := range 3 {
				type change struct {
					key, value string
					del        bool
				}
				var changes []change
				for i := range 5000 {
					c := change{key: pool[rng.IntN(len(pool))], value: fmt.Sprintf("%d-%d", round, i), del: rng.IntN(4) == 0}
					if i == 77 {
						c.value = string(bytes.Repeat([]byte{'L'}, loadBlockSize+1))
					}
					changes = append(changes, c)
					b.add([]byte(c.key), []byte(c.value), c.del)
				}
				last := map[string]change{}
				for _, c := range changes {
					last[c.key] = c
				}
				var want []string
				for k := range last {
					want = append(want, k)
				}
				slices.Sort(want)
				var got []string
				for _, e := range b.sorted() {
					k := string(b.key(e))
					got = append(got, k)
					w := last[k]
					if (e.valueLen < 0) != w.del || (!w.del && string(b.value(e)) != w.value) {
						t.Fatalf("round %d: key %q has value %.20q (delete %v), want %.20q (delete %v)", round, k, b.value(e), e.valueLen < 0, w.value, w.del)
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: %d keys in order %q..., want %d: %q...", round, len(got), got[:min(5, len(got))], len(want), want[:min(5, len(want))])
				}
				b.reset()
			}
		})
	}
}

// BenchmarkLoadBufferSorted sorts a chunk of 75,000 distinct keys of a
// restore's kind ("row-<i>", in no order), as a loader does before it
// writes the chunk.
func BenchmarkLoadBufferSorted(b *testing.B) {
	const n = 75_000
	rng := rand.New(rand.NewPCG(1, 2))
	var buf loadBuffer
	for _, i := range rng.Perm(n) {
		buf.add(fmt.Appendf(nil, "row-%d", i*13), []byte("value-0000000000"), false)
	}
	for b.Loop() {
		if got := len(buf.sorted()); got != n {
			b.Fatalf("%d keys, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}
