package bench

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatheredHistogram returns the histogram of the metric name gathered from
// g, summed over its series, or nil.
func gatheredHistogram(g prometheus.Gatherer, name string) *dto.Histogram {
	fams, err := g.Gather()
	if err != nil {
		return nil
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		var sum *dto.Histogram
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if sum == nil {
				sum = h
				continue
			}
			count, total := sum.GetSampleCount()+h.GetSampleCount(), sum.GetSampleSum()+h.GetSampleSum()
			sum.SampleCount, sum.SampleSum = &count, &total
			for i, b := range h.GetBucket() {
				c := sum.Bucket[i].GetCumulativeCount() + b.GetCumulativeCount()
				sum.Bucket[i].CumulativeCount = &c
			}
		}
		return sum
	}
	return nil
}

// quantile estimates the q-quantile of h by linear interpolation within the
// bucket that holds it, as Prometheus's histogram_quantile does; NaN when h
// is empty.
func quantile(h *dto.Histogram, q float64) float64 {
	if h.GetSampleCount() == 0 {
		return math.NaN()
	}
	rank := q * float64(h.GetSampleCount())
	lower, below := 0.0, uint64(0)
	for _, b := range h.GetBucket() {
		if float64(b.GetCumulativeCount()) >= rank {
			in := b.GetCumulativeCount() - below
			if in == 0 {
				return b.GetUpperBound()
			}
			return lower + (b.GetUpperBound()-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = b.GetUpperBound(), b.GetCumulativeCount()
	}
	return lower // in the +Inf bucket: the highest finite bound
}
