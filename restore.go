package sluice

// RestoreProgress is how far a processor's partitions are in restoring their
// tables from the changelog, summed over the partitions.
type RestoreProgress struct {
	// Restored is how many changelog records the restores have read.
	Restored int64
	// Total is Restored plus the records the restores still have to read.
	Total int64
	// Restoring reports whether any partition is still restoring.
	Restoring bool
}

// Restore sums the restore progress of the partitions in s, for a progress
// bar or a readiness check.
func (s Stats) Restore() RestoreProgress {
	var r RestoreProgress
	for _, p := range s.Partitions {
		r.Restored += p.Restored
		r.Total += p.Restored + max(p.RestoreEnd-p.RestoreOffset, 0)
		if p.State == "restoring" {
			r.Restoring = true
		}
	}
	return r
}
