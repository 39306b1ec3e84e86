package logdrain

// The replay's schedule: when each request is due, from the time of its
// router line and the speed factor.
//
// The schedule is anchored on the earliest of the first requests it is
// asked about: that one is due at once, and every later one at the
// anchor's wall time plus the distance between the two lines' times
// divided by the speed. Anchoring on one request, rather than sleeping the
// gap to the previous one as a single-threaded replayer does, keeps the
// spacing when requests of several partitions are scheduled at once, and
// lets no drift accumulate from the time the requests themselves take.
//
// The handlers of a concurrent input start in no set order, so the first
// request asked about need not be the earliest of its partition: the
// anchor is fixed only after a short settling time, over every request
// asked about until then.

import (
	"context"
	"sync"
	"time"
)

// anchorSettle is how long the schedule gathers the first requests before
// it fixes its anchor: ample for the handlers of one fetch to start.
const anchorSettle = 100 * time.Millisecond

// schedule says when requests are due. It is safe for concurrent use.
type schedule struct {
	speed   float64       // 0: every request is due at once
	maxWait time.Duration // 0: no bound on a request's wait
	settle  time.Duration // how long the first requests are gathered
	now     func() time.Time

	mu     sync.Mutex
	ready  chan struct{} // nil until the first request, closed once anchored
	origin time.Time     // the anchor's line time
	start  time.Time     // the anchor's wall time
}

func newSchedule(speed float64, maxWait, settle time.Duration, now func() time.Time) *schedule {
	if now == nil {
		now = time.Now
	}
	return &schedule{speed: speed, maxWait: maxWait, settle: settle, now: now}
}

// due returns the wall time at which the request of a line of time at is
// due, once the anchor is fixed, or ctx's error if it is done first. A
// line without a time, or one older than the anchor, is due at once. A
// request that would wait longer than maxWait moves the schedule forward,
// so that it waits maxWait and the ones after it keep their spacing to it:
// a night without traffic is not replayed as a night of waiting.
func (s *schedule) due(ctx context.Context, at time.Time) (time.Time, error) {
	if s.speed <= 0 || at.IsZero() {
		return s.now(), nil
	}
	s.mu.Lock()
	switch {
	case s.ready == nil:
		s.ready, s.origin = make(chan struct{}), at
		s.mu.Unlock()
		if s.settle > 0 {
			// Not cut short by ctx: the requests gathered wait for the
			// anchor, and the wait is short.
			time.Sleep(s.settle)
		}
		s.mu.Lock()
		s.start = s.now()
		close(s.ready)
	case !closed(s.ready):
		if at.Before(s.origin) {
			s.origin = at
		}
		ready := s.ready
		s.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	now := s.now()
	d := s.start.Add(time.Duration(float64(at.Sub(s.origin)) / s.speed))
	if s.maxWait > 0 && d.Sub(now) > s.maxWait {
		s.start = s.start.Add(-(d.Sub(now) - s.maxWait))
		d = now.Add(s.maxWait)
	}
	if d.Before(now) {
		return now, nil
	}
	return d, nil
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
