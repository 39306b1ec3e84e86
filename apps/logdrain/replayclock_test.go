package logdrain

import (
	"context"
	"testing"
	"time"
)

func due(t *testing.T, s *schedule, at time.Time) time.Time {
	t.Helper()
	d, err := s.due(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestScheduleSpacesRequestsAsTheLinesDividedBySpeed(t *testing.T) {
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return wall }
	line := time.Date(2016, 5, 4, 4, 57, 12, 0, time.UTC)
	for _, c := range []struct {
		name    string
		speed   float64
		maxWait time.Duration
		at      []time.Duration // line times after the first
		want    []time.Duration // due times after the first's wall time
	}{
		{"speed 1 keeps the spacing", 1, 0, []time.Duration{0, time.Second, 3 * time.Second}, []time.Duration{0, time.Second, 3 * time.Second}},
		{"speed 2 halves it", 2, 0, []time.Duration{0, time.Second, 3 * time.Second}, []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond}},
		{"speed 0.5 doubles it", 0.5, 0, []time.Duration{0, time.Second}, []time.Duration{0, 2 * time.Second}},
		{"speed 0 sends at once", 0, 0, []time.Duration{0, time.Hour}, []time.Duration{0, 0}},
		{"a line older than the first is due at once", 1, 0, []time.Duration{0, -time.Minute, time.Second}, []time.Duration{0, 0, time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSchedule(c.speed, c.maxWait, 0, now)
			for i, at := range c.at {
				if got := due(t, s, line.Add(at)).Sub(wall); got != c.want[i] {
					t.Errorf("line %d at +%v: due +%v, want +%v", i, at, got, c.want[i])
				}
			}
		})
	}
}

func TestScheduleCutsAGapToMaxWaitAndKeepsTheSpacingAfterIt(t *testing.T) {
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule(1, time.Second, 0, func() time.Time { return wall })
	line := time.Date(2016, 5, 4, 4, 57, 12, 0, time.UTC)
	due(t, s, line)
	if got, want := due(t, s, line.Add(time.Hour)), wall.Add(time.Second); !got.Equal(want) {
		t.Errorf("line an hour later due %v, want %v", got, want)
	}
	wall = wall.Add(time.Second) // its request is sent
	if got, want := due(t, s, line.Add(time.Hour+500*time.Millisecond)), wall.Add(500*time.Millisecond); !got.Equal(want) {
		t.Errorf("line 500ms after it due %v, want %v", got, want)
	}
}

func TestScheduleCountsFromTheWallTimeOfTheFirstRequest(t *testing.T) {
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule(1, 0, 0, func() time.Time { return wall })
	line := time.Date(2016, 5, 4, 4, 57, 12, 0, time.UTC)
	due(t, s, line)
	wall = wall.Add(300 * time.Millisecond) // the first request took 300ms
	if got, want := due(t, s, line.Add(time.Second)), wall.Add(700*time.Millisecond); !got.Equal(want) {
		t.Errorf("second line due %v, want %v: the first's time is not the second's to wait again", got, want)
	}
	if got := due(t, s, time.Time{}); !got.Equal(wall) {
		t.Errorf("a line without a time is due %v, want now %v", got, wall)
	}
}

func TestScheduleAnchorsOnTheEarliestOfTheFirstRequestsWhateverTheirOrder(t *testing.T) {
	s := newSchedule(1, 0, 500*time.Millisecond, nil)
	line := time.Date(2016, 5, 4, 4, 57, 12, 0, time.UTC)
	later := make(chan time.Time, 1)
	go func() {
		d, _ := s.due(context.Background(), line.Add(2*time.Second)) // its handler started first
		later <- d
	}()
	for {
		s.mu.Lock()
		started := s.ready != nil
		s.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	first := due(t, s, line)
	if gap := (<-later).Sub(first); gap > 2*time.Second || gap < 1900*time.Millisecond {
		t.Errorf("the line 2s later is due %v after the first, want 2s", gap)
	}
}
