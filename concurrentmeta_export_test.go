package sluice

// FinishedInMetadata returns the offsets that meta, committed with offset
// committed for a partition of a concurrent input, lists as finished.
func FinishedInMetadata(committed int64, meta string) []int64 {
	var offsets []int64
	for _, r := range decodeFinished(committed, meta) {
		for o := r.from; o < r.to; o++ {
			offsets = append(offsets, o)
		}
	}
	return offsets
}
