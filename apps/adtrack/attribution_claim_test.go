package adtrack

import (
	"testing"
	"time"

	"github.com/sluice-io/sluice/sluicetest"
)

// The claim a consumed click leaves is kept for as long as the click
// itself would have been: a delivery of the click again, after the
// install's Remember has passed but while the click could still match,
// finds the claim and is not stored again for a second install to take.
func TestAttributionClaimOutlivesTheClickSoARedeliveredClickIsNotConsumedTwice(t *testing.T) {
	a, tt := newAttribution(t, sluicetest.Partitions(1))
	click := testClick("1", testAdid, t0.Add(-time.Hour), t0.Add(WindowAfter))
	sendEvent(t, tt, ClicksTopic, click)
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, t0))
	if convs := conversions(t, a, tt); len(convs) != 1 {
		t.Fatalf("%d conversions of the first install, want 1", len(convs))
	}

	// Stream time passes the install's Remember, not the click's deadline.
	later := t0.Add(DefaultRemember + time.Minute)
	if !later.Before(a.clickDeadline(t0.Add(WindowAfter))) {
		t.Fatal("the test needs a time before the click's deadline")
	}
	sendEvent(t, tt, ClicksTopic, testClick("x", "B0000000-0000-0000-0000-000000000001", later, later.Add(24*time.Hour)))
	sendEvent(t, tt, ClicksTopic, click)
	sendEvent(t, tt, InAppTopic, testInstall(testAdid, later))

	if convs, un := conversions(t, a, tt), unattributed(t, a, tt); len(convs) != 1 || len(un) != 1 {
		t.Fatalf("%d conversions and %d unattributed installs, want the click's one conversion and the second install unattributed", len(convs), len(un))
	}
}
