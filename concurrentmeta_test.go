package sluice

import (
	"encoding/base64"
	"slices"
	"testing"
)

// offsetsOf expands ranges into the offsets they hold.
func offsetsOf(ranges []ccRange) []int64 {
	var out []int64
	for _, r := range ranges {
		for o := r.from; o < r.to; o++ {
			out = append(out, o)
		}
	}
	return out
}

func TestFinishedMetadataReadsBackTheOffsetsItLists(t *testing.T) {
	for _, finished := range [][]int64{
		{101},
		{101, 102, 103},
		{101, 105, 106, 200, 1 << 40},
		{150},
	} {
		meta := encodeFinished(100, finished)
		if len(meta) > ccMetaMaxLen {
			t.Fatalf("metadata of %v is %d bytes, over %d", finished, len(meta), ccMetaMaxLen)
		}
		if got := offsetsOf(decodeFinished(100, meta)); !slices.Equal(got, finished) {
			t.Fatalf("metadata %q of %v reads back as %v", meta, finished, got)
		}
	}
	if meta := encodeFinished(100, nil); meta != "" {
		t.Fatalf("metadata %q with nothing finished, want none", meta)
	}
}

func TestFinishedMetadataLeavesOutTheHighestOffsetsPastItsBound(t *testing.T) {
	// Every other offset finished: a pair of bytes per record.
	var finished []int64
	for o := int64(1); o < 20000; o += 2 {
		finished = append(finished, o)
	}
	meta := encodeFinished(0, finished)
	if len(meta) > ccMetaMaxLen {
		t.Fatalf("metadata is %d bytes, over the bound %d", len(meta), ccMetaMaxLen)
	}
	got := offsetsOf(decodeFinished(0, meta))
	if len(got) == 0 || len(got) >= len(finished) || !slices.Equal(got, finished[:len(got)]) {
		t.Fatalf("metadata lists %d offsets, want the lowest of the %d finished, fewer than all", len(got), len(finished))
	}
}

func TestFinishedMetadataOfAnotherToolReadsAsNothingFinished(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	for _, meta := range []string{
		"",
		"kgo-2f9c1f0e-4a4e-4b8e-9d57-0b0c6a1d1f00",
		"sluice-cc:",
		"sluice-cc:!!not base64!!",
		ccMetaPrefix + b64([]byte{2, 1, 1}),                         // an unknown version
		ccMetaPrefix + b64([]byte{1, 1}),                            // a gap without its run
		ccMetaPrefix + b64([]byte{1, 1, 0}),                         // an empty run
		ccMetaPrefix + b64([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff}), // a truncated varint
		ccMetaPrefix + b64([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1}), // past the int64 offsets
	} {
		if got := decodeFinished(5, meta); got != nil {
			t.Fatalf("metadata %q reads as %v finished, want nothing", meta, got)
		}
	}
}

func FuzzFinishedMetadataNeverPanics(f *testing.F) {
	f.Add(int64(0), encodeFinished(0, []int64{1, 2, 5}))
	f.Add(int64(100), "kgo-member")
	f.Add(int64(7), ccMetaPrefix+"AQEB")
	f.Fuzz(func(t *testing.T, base int64, meta string) {
		ranges := decodeFinished(base, meta)
		pos := base
		for _, r := range ranges {
			if r.from < pos || r.to <= r.from {
				t.Fatalf("metadata %q with base %d reads as ranges %v, not ascending above the base", meta, base, ranges)
			}
			pos = r.to
		}
	})
}
