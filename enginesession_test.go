package sluice

import (
	"testing"
	"time"
)

func TestSessionRetentionCountsFromTheSessionsEnd(t *testing.T) {
	w := Sessions(10 * time.Second).Grace(5 * time.Second)
	if got, want := w.closesAt(100), int64(100+15*time.Second); got != want {
		t.Errorf("a session ending at 100 closes at %d, want %d", got, want)
	}
	if !w.purgedAtClose() {
		t.Error("sessions with the default retention are not purged at close")
	}
	if got, want := w.Retain(time.Minute).purgedAt(100), int64(100+time.Minute); got != want {
		t.Errorf("a session ending at 100 retained a minute is purged at %d, want %d", got, want)
	}
}
