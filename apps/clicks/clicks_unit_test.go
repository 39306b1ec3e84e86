package clicks

// Unit tests of the counting group, without a broker: sluicetest runs the
// group's definition through the processor's partition engine.

import (
	"fmt"
	"testing"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/sluicetest"
)

func newTester(t *testing.T, opts ...sluicetest.Option) *sluicetest.Tester[User] {
	t.Helper()
	tt, err := sluicetest.New(DefineGroup(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func click(t *testing.T, tt *sluicetest.Tester[User], user string, n int) {
	t.Helper()
	for range n {
		if err := sluicetest.Send(tt, Topic, user, "click"); err != nil {
			t.Fatal(err)
		}
	}
}

func clicksOf(t *testing.T, tt *sluicetest.Tester[User], user string) int {
	t.Helper()
	u, _, err := tt.Row(user)
	if err != nil {
		t.Fatal(err)
	}
	return u.Clicks
}

func TestClickCounterCountsEachUsersClicksInItsRow(t *testing.T) {
	tt := newTester(t)
	for i := range 10 {
		click(t, tt, fmt.Sprint("user-", i), i+1)
	}
	for i := range 10 {
		user := fmt.Sprint("user-", i)
		if got := clicksOf(t, tt, user); got != i+1 {
			t.Errorf("%s has %d clicks, want %d", user, got, i+1)
		}
	}
	if _, ok, _ := tt.Row("nobody"); ok {
		t.Error("a user who never clicked has a row")
	}
	if s := tt.Stats(); s.Consumed != 55 {
		t.Errorf("consumed %d records, want 55", s.Consumed)
	}
	// Each row is written to the changelog partition of its user, where
	// views and the next owner of the partition look for it.
	for _, r := range tt.Records(DefineGroup().TableTopic()) {
		if want := tt.PartitionOf(r.Key); r.Partition != want {
			t.Errorf("changelog record of %s on partition %d, want %d", r.Key, r.Partition, want)
		}
	}
}

func TestClickCounterKeepsItsCountsThroughACrashAndARebalance(t *testing.T) {
	for _, g := range []sluice.DeliveryGuarantee{sluice.AtLeastOnce, sluice.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			tt := newTester(t, sluicetest.ManualCommit(), sluicetest.ProcessorOptions(sluice.Guarantee(g)))
			click(t, tt, "user-1", 3)
			if err := tt.Commit(); err != nil {
				t.Fatal(err)
			}
			click(t, tt, "user-1", 2) // lost in the crash, then counted again
			tt.Crash()
			if got := clicksOf(t, tt, "user-1"); got != 3 {
				t.Errorf("after the crash user-1 has %d clicks, want the 3 committed", got)
			}
			if err := tt.Rebalance(tt.PartitionOf("user-1")); err != nil {
				t.Fatal(err)
			}
			click(t, tt, "user-1", 1)
			if err := tt.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := clicksOf(t, tt, "user-1"); got != 6 {
				t.Errorf("user-1 has %d clicks, want 6: each click counted once", got)
			}
		})
	}
}

func TestCountAddsOneClickToTheUsersRow(t *testing.T) {
	tt := newTester(t)
	if err := tt.SetRow("user-7", User{Clicks: 41}); err != nil {
		t.Fatal(err)
	}
	if err := sluicetest.Call(tt, count, "user-7", "click"); err != nil {
		t.Fatal(err)
	}
	if got := clicksOf(t, tt, "user-7"); got != 42 {
		t.Errorf("user-7 has %d clicks, want 42", got)
	}
}
