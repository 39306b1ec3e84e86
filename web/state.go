package web

import (
	"net/http"
	"time"

	"github.com/sluice-io/sluice"
)

// state is what /api/state returns: everything the page shows.
type state struct {
	Time     time.Time    `json:"time"`
	Metrics  bool         `json:"metrics"`
	Groups   []groupState `json:"groups"`
	Views    []viewState  `json:"views"`
	Emitters []emitState  `json:"emitters"`
	Pages    []pageLink   `json:"pages"`
}

type groupState struct {
	Group        string           `json:"group"`
	Consumed     int64            `json:"consumed"`
	Produced     int64            `json:"produced"`
	Failed       int64            `json:"failed"`
	Skipped      int64            `json:"skipped"`
	DeadLettered int64            `json:"deadLettered"`
	Rebalances   int64            `json:"rebalances"`
	Commits      int64            `json:"commits"`
	Aborts       int64            `json:"aborts"`
	LastError    *errorState      `json:"lastError"`
	Rate         []ratePoint      `json:"rate"`
	Partitions   []partitionState `json:"partitions"`
	Standbys     []standbyState   `json:"standbys"`
}

// standbyState is a warm copy of a partition the processor does not own.
type standbyState struct {
	Partition     int32  `json:"partition"`
	State         string `json:"state"`
	Offset        int64  `json:"offset"`
	HighWatermark int64  `json:"highWatermark"`
	Behind        int64  `json:"behind"`
	Restored      int64  `json:"restored"`
}

type ratePoint struct {
	At        int64   `json:"at"` // Unix milliseconds
	PerSecond float64 `json:"perSecond"`
}

type errorState struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

type partitionState struct {
	Partition     int32        `json:"partition"`
	State         string       `json:"state"`
	Consumed      int64        `json:"consumed"`
	Inputs        []inputState `json:"inputs"`
	Lag           *int64       `json:"lag"` // null until measured
	LagMeasured   *time.Time   `json:"lagMeasured"`
	TableRows     *int64       `json:"tableRows"` // null when not counted
	RestoreOffset int64        `json:"restoreOffset"`
	RestoreEnd    int64        `json:"restoreEnd"`
	Restored      int64        `json:"restored"`
	LastError     *errorState  `json:"lastError"`
}

type inputState struct {
	Topic         string `json:"topic"`
	Committed     int64  `json:"committed"`
	HighWatermark int64  `json:"highWatermark"`
	Lag           int64  `json:"lag"`
}

type viewState struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Rows  *int64 `json:"rows"`
}

type emitState struct {
	Topic   string `json:"topic"`
	Emitted int64  `json:"emitted"`
	Errors  int64  `json:"errors"`
}

func errorOf(e *sluice.ErrorEvent) *errorState {
	if e == nil {
		return nil
	}
	return &errorState{Time: e.Time, Message: e.Message}
}

func (m *Monitor) serveState(w http.ResponseWriter, _ *http.Request) {
	m.sample()
	s := state{Time: time.Now(), Metrics: m.gatherer != nil, Groups: []groupState{}, Views: []viewState{}, Emitters: []emitState{}, Pages: m.links}
	if s.Pages == nil {
		s.Pages = []pageLink{}
	}
	for i, p := range m.procs {
		st := p.Stats()
		g := groupState{
			Group: st.Group, Consumed: st.Consumed, Produced: st.Produced,
			Failed: st.Failed, Skipped: st.Skipped, DeadLettered: st.DeadLettered,
			Rebalances: st.Rebalances, Commits: st.Commits, Aborts: st.Aborts,
			LastError: errorOf(st.LastError), Rate: m.rates(i), Partitions: []partitionState{},
			Standbys: []standbyState{},
		}
		for _, sb := range st.Standbys {
			g.Standbys = append(g.Standbys, standbyState(sb))
		}
		if g.Rate == nil {
			g.Rate = []ratePoint{}
		}
		for _, ps := range st.Partitions {
			pst := partitionState{
				Partition: ps.Partition, State: ps.State, Consumed: ps.Consumed, Inputs: []inputState{},
				RestoreOffset: ps.RestoreOffset, RestoreEnd: ps.RestoreEnd, Restored: ps.Restored,
				LastError: errorOf(ps.LastError),
			}
			for _, in := range ps.Inputs {
				pst.Inputs = append(pst.Inputs, inputState(in))
			}
			if ps.Lag >= 0 {
				lag, at := ps.Lag, ps.LagMeasured
				pst.Lag, pst.LagMeasured = &lag, &at
			}
			if ps.TableRows >= 0 {
				rows := ps.TableRows
				pst.TableRows = &rows
			}
			g.Partitions = append(g.Partitions, pst)
		}
		s.Groups = append(s.Groups, g)
	}
	for _, v := range m.views {
		st := v.Stats()
		vs := viewState{Name: st.Topic, State: st.State.String()}
		if st.Rows >= 0 {
			rows := st.Rows
			vs.Rows = &rows
		}
		s.Views = append(s.Views, vs)
	}
	for _, e := range m.emitters {
		st := e.Stats()
		s.Emitters = append(s.Emitters, emitState{Topic: st.Topic, Emitted: st.Emitted, Errors: st.Errors})
	}
	writeJSON(w, http.StatusOK, s)
}
