package redis

import "github.com/prometheus/client_golang/prometheus"

// Option configures a Store.
type Option interface{ apply(*config) }

type config struct {
	prefix string
	name   string
	reg    prometheus.Registerer
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Prefix puts p in front of every key in Redis: the store's key "k" is the
// Redis key p+"k". Keys handed back by GetMany are without the prefix. The
// default is no prefix. A prefix such as "word-count/count/" keeps the keys of
// several stores apart in one Redis database.
func Prefix(p string) Option {
	return optionFunc(func(c *config) { c.prefix = p })
}

// Name sets the store label of the store's metrics. The default is "redis".
// Stores that share a Registerer should have different names.
func Name(n string) Option {
	return optionFunc(func(c *config) { c.name = n })
}

// Metrics registers the store's metrics with reg, labelled with the store's
// Name and the operation (get, get_many, put, put_many, delete):
//
//	sluice_kv_operations_total{store,op}             calls
//	sluice_kv_operation_errors_total{store,op}       calls that returned an error
//	sluice_kv_operation_duration_seconds{store,op}   histogram of call durations
//
// Several stores may register with one Registerer: they share the metrics
// and differ in the store label. By default a store has no metrics.
func Metrics(reg prometheus.Registerer) Option {
	return optionFunc(func(c *config) { c.reg = reg })
}
