package logdrain

import (
	"strings"
	"testing"
	"time"
)

func TestDemoGeneratorWritesLogplexBodiesWithSomeBrokenFrames(t *testing.T) {
	g := newDemoGenerator(1)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	kinds := map[lineKind]int{}
	rejects := map[string]int{}
	codes := map[string]bool{}
	statuses := map[int]bool{}
	paths := map[string]bool{}
	const bodies = 300
	for range bodies {
		b, n := g.body(now)
		frames := SplitFrames(b)
		if len(frames) != n {
			t.Fatalf("body of %d frames by its count splits into %d: %q", n, len(frames), b)
		}
		for _, f := range frames {
			kind, rec, why := classify(f, false)
			kinds[kind]++
			if kind == rejected {
				rejects[why.kind]++
				continue
			}
			if rec.Router != nil {
				codes[rec.Router.Code] = true
				statuses[rec.Router.Status] = true
				paths[rec.Router.Path] = true
				if rec.Router.ServiceMS == nil || rec.Router.ConnectMS == nil || !strings.HasPrefix(rec.Router.Path, "/") {
					t.Errorf("router line without its times or path: %+v", rec.Router)
				}
				if _, err := time.Parse(time.RFC3339Nano, rec.Timestamp); err != nil {
					t.Errorf("router line without a time: %v", err)
				}
			}
		}
	}
	if kinds[rejected] != bodies/20 || rejects[RejectFraming] == 0 || rejects[RejectSyslog] == 0 || rejects[RejectRouter] == 0 {
		t.Errorf("rejected frames %d by kind %v, want %d of all three kinds", kinds[rejected], rejects, bodies/20)
	}
	if kinds[routerLine] < 10*kinds[logLine]/2 || kinds[logLine] == 0 {
		t.Errorf("router lines %d, app lines %d: want mostly router lines", kinds[routerLine], kinds[logLine])
	}
	for _, c := range []string{"H12", "H13", "H18"} {
		if !codes[c] {
			t.Errorf("no router error %s among %v", c, codes)
		}
	}
	for _, s := range []int{200, 201, 304, 404, 500, 503} {
		if !statuses[s] {
			t.Errorf("no status %d among %v", s, statuses)
		}
	}
	if len(paths) < 10 {
		t.Errorf("only %d paths: %v", len(paths), paths)
	}
}
