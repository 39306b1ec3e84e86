package web

import (
	"encoding/json"
	"fmt"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/internal/jsonvalue"
)

// Views adds views to the page and to its table browser, each named after
// its table topic. The browser shows rows as JSON, whatever the views'
// codecs: the values are decoded by the view and encoded with
// encoding/json, except that a float that is NaN or infinite, which JSON
// has no number for, is shown as the string "NaN", "+Inf" or "-Inf".
func Views[V any](vs ...*sluice.View[V]) Opt {
	return func(m *Monitor) {
		for _, v := range vs {
			if v != nil {
				m.views = append(m.views, viewOf(v))
			}
		}
	}
}

// view is what the monitor shows of a view and asks of it, whatever the
// type of its rows.
type view struct {
	topic string
	stats func() sluice.ViewStats
	get   func(key string) (json.RawMessage, error)
	rows  func(from, to string, limit int) ([]keyValue, bool, error)
}

// keyValue is a row of a view with its value as JSON.
type keyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

func viewOf[V any](v *sluice.View[V]) *view {
	return &view{
		topic: v.Topic(),
		stats: v.Stats,
		get: func(key string) (json.RawMessage, error) {
			val, err := v.Get(key)
			if err != nil {
				return nil, err
			}
			b, err := jsonvalue.Marshal(val)
			if err != nil {
				return nil, fmt.Errorf("view %s key %q: encode json: %w", v.Topic(), key, err)
			}
			return b, nil
		},
		rows: func(from, to string, limit int) (rows []keyValue, more bool, err error) {
			var encErr error
			err = v.Iterate(from, to, func(k string, val V) bool {
				if len(rows) == limit {
					more = true
					return false
				}
				b, err := jsonvalue.Marshal(val)
				if err != nil {
					encErr = fmt.Errorf("view %s key %q: encode json: %w", v.Topic(), k, err)
					return false
				}
				rows = append(rows, keyValue{Key: k, Value: b})
				return true
			})
			if err == nil {
				err = encErr
			}
			return rows, more, err
		},
	}
}

func (v *view) Topic() string                               { return v.topic }
func (v *view) Stats() sluice.ViewStats                     { return v.stats() }
func (v *view) State() sluice.ViewState                     { return v.stats().State }
func (v *view) GetJSON(key string) (json.RawMessage, error) { return v.get(key) }
func (v *view) RangeJSON(from, to string, limit int) ([]keyValue, bool, error) {
	return v.rows(from, to, limit)
}
