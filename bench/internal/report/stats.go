package report

import (
	"slices"
	"time"
)

// Latencies summarises a sample of durations.
type Latencies struct {
	Count int     `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// Summarise returns the percentiles of sample, which it sorts.
func Summarise(sample []time.Duration) Latencies {
	if len(sample) == 0 {
		return Latencies{}
	}
	slices.Sort(sample)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latencies{
		Count: len(sample),
		P50ms: ms(Percentile(sample, 50)),
		P90ms: ms(Percentile(sample, 90)),
		P99ms: ms(Percentile(sample, 99)),
		MaxMs: ms(sample[len(sample)-1]),
	}
}

// Percentile returns the p-th percentile (nearest rank) of a sorted sample.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Median returns the median of a sample of floats, which it sorts.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}
