package export

import (
	"testing"
	"time"
)

func TestGeneratorMakesParsableUpdatesOfEveryPeriodThatCountUp(t *testing.T) {
	g := NewGenerator(1)
	now := utc(2016, 1, 4, 11, 45, 10)
	last := map[string]int64{}
	periods := map[Period]bool{}
	for range 500 {
		ups := g.Hit(now)
		if len(ups) != 7 && len(ups) != 14 {
			t.Fatalf("a hit made %d updates, want 7 periods of the service and maybe of its application or user", len(ups))
		}
		for _, u := range ups {
			k, err := ParseStatsKey(u.Key)
			if err != nil {
				t.Fatal(err)
			}
			periods[k.Period] = true
			if u.Value != last[u.Key]+1 {
				t.Fatalf("%s went from %d to %d", u.Key, last[u.Key], u.Value)
			}
			last[u.Key] = u.Value
		}
		now = now.Add(time.Second)
	}
	if len(periods) != 7 {
		t.Errorf("periods %v, want all 7", periods)
	}
	if len(last) < 200 {
		t.Errorf("%d counters, want many", len(last))
	}
}
