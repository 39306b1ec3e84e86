package logdrain

// What the drain makes of each frame, and the counts it keeps of requests,
// lines and rejected frames, which Stats returns and /metrics serves.

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// lineKind is what the drain does with a frame.
type lineKind int

const (
	routerLine lineKind = iota
	logLine
	droppedLine
	rejected
	numLineKinds
)

// rejectReason is why a frame is rejected, and by which parser.
type rejectReason struct {
	kind string
	err  error
}

// classify parses a frame into the record it becomes, or says why it is
// rejected.
func classify(f Frame, dropLogs bool) (lineKind, Record, rejectReason) {
	if f.Err != nil {
		return rejected, Record{}, rejectReason{RejectFraming, f.Err}
	}
	m, err := ParseMessage(f.Msg)
	if err != nil {
		return rejected, Record{}, rejectReason{RejectSyslog, err}
	}
	if IsRouter(&m) {
		r, err := ParseRouterLine(m.Msg)
		if err != nil {
			return rejected, Record{}, rejectReason{RejectRouter, err}
		}
		return routerLine, NewRecord(&m, &r), rejectReason{}
	}
	if dropLogs {
		return droppedLine, Record{}, rejectReason{}
	}
	return logLine, NewRecord(&m, nil), rejectReason{}
}

// DrainStats are counts of what a drain has done since it was created.
type DrainStats struct {
	// Requests counts the answers to POST /logs and /process by status
	// code.
	Requests map[int]int64
	// RouterLines, LogLines and DroppedLines count the lines of
	// acknowledged bodies written to RouterTopic, written to LogsTopic, and
	// dropped (DropLogs).
	RouterLines, LogLines, DroppedLines int64
	// Rejected counts rejected frames by kind (RejectFraming, RejectSyslog,
	// RejectRouter), whether or not their body was acknowledged.
	Rejected map[string]int64
}

// Stats returns the drain's counts.
func (d *Drain) Stats() DrainStats {
	s := DrainStats{Requests: map[int]int64{}, Rejected: map[string]int64{}}
	for code, n := range d.stats.requests {
		if v := n.Load(); v > 0 {
			s.Requests[code] = v
		}
	}
	s.RouterLines = d.stats.lineCounts[routerLine].Load()
	s.LogLines = d.stats.lineCounts[logLine].Load()
	s.DroppedLines = d.stats.lineCounts[droppedLine].Load()
	for kind, n := range d.stats.rejects {
		if v := n.Load(); v > 0 {
			s.Rejected[kind] = v
		}
	}
	return s
}

// answerCodes are the statuses the drain answers a body with; any other
// (none is expected) is counted as 500.
var answerCodes = []int{
	http.StatusNoContent, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestTimeout,
	http.StatusRequestEntityTooLarge, http.StatusInternalServerError, http.StatusServiceUnavailable,
}

type drainStats struct {
	requests   map[int]*atomic.Int64
	lineCounts [numLineKinds]atomic.Int64
	rejects    map[string]*atomic.Int64
}

func newDrainStats() *drainStats {
	s := &drainStats{requests: map[int]*atomic.Int64{}, rejects: map[string]*atomic.Int64{}}
	for _, c := range answerCodes {
		s.requests[c] = new(atomic.Int64)
	}
	for _, k := range []string{RejectFraming, RejectSyslog, RejectRouter} {
		s.rejects[k] = new(atomic.Int64)
	}
	return s
}

func (s *drainStats) request(status int) {
	n, ok := s.requests[status]
	if !ok {
		n = s.requests[http.StatusInternalServerError]
	}
	n.Add(1)
}

func (s *drainStats) reject(kind string) { s.rejects[kind].Add(1) }

func (s *drainStats) lines(n [numLineKinds]int64) {
	for k := routerLine; k < rejected; k++ {
		s.lineCounts[k].Add(n[k])
	}
}

// register exposes the counts as Prometheus counters that read them.
func (s *drainStats) register(reg prometheus.Registerer) error {
	var cs []prometheus.Collector
	for code, n := range s.requests {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "logdrain_requests_total",
			Help:        "Bodies POSTed to the drain, by the status code of the answer.",
			ConstLabels: prometheus.Labels{"code": strconv.Itoa(code)},
		}, func() float64 { return float64(n.Load()) }))
	}
	for kind, name := range map[lineKind]string{routerLine: RouterTopic, logLine: LogsTopic, droppedLine: "dropped"} {
		n := &s.lineCounts[kind]
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "logdrain_lines_total",
			Help:        "Lines of acknowledged bodies, by where they went: the router or logs topic, or dropped.",
			ConstLabels: prometheus.Labels{"to": name},
		}, func() float64 { return float64(n.Load()) }))
	}
	for kind, n := range s.rejects {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "logdrain_rejected_frames_total",
			Help:        "Frames written to the rejects topic, by the parser that refused them.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 { return float64(n.Load()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
