package sluice

import (
	"strings"
	"testing"
	"time"
)

func TestSlidingWindowsRefuseARetentionShorterThanTwiceMaxDiffPlusGrace(t *testing.T) {
	w := Sliding(10 * time.Second).Grace(time.Second)
	err := w.Retain(20 * time.Second).validate()
	if err == nil || !strings.Contains(err.Error(), "shorter than twice the maximum difference plus grace, 21s") {
		t.Fatalf("validate = %v, want the least retention", err)
	}
	if err := w.Retain(21 * time.Second).validate(); err != nil {
		t.Fatalf("the least retention refused: %v", err)
	}
	if got := w.retentionOf(); got != 21*time.Second {
		t.Errorf("default retention %s, want 21s", got)
	}
}
