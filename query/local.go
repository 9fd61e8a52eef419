package query

import (
	"context"
	"slices"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// plan is one way to find a filter's candidates: a scan of the ordered index
// over the filter's key range, or scans of a secondary index, one per value.
type plan struct {
	index  crdt.Index // meaningful when values is set
	values []string   // secondary-index values to scan; nil: the ordered index
	cost   int        // estimated events read
}

// choosePlan picks the plan that reads the fewest events. A trace is assumed
// small, so a correlation always wins.
func choosePlan(s *crdt.Set, f Filter, r crdt.Range) plan {
	if !f.Correlation.IsZero() {
		return plan{index: crdt.ByCorrelation, values: []string{f.Correlation.String()}}
	}
	best := plan{cost: s.Count(r)}
	for _, p := range []plan{{index: crdt.ByNode, values: f.Nodes}, {index: crdt.ByKind, values: f.Kinds}} {
		if len(p.values) == 0 {
			continue
		}
		for _, v := range p.values {
			p.cost += s.IndexCount(p.index, v)
		}
		if p.cost < best.cost {
			best = p
		}
	}
	return best
}

// Local runs f against the set and returns the matching events in key order
// (newest first if f.Descending), at most f's limit of them.
func Local(ctx context.Context, s *crdt.Set, f Filter) ([]events.Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	r, limit := f.keyRange(), f.limit()
	p := choosePlan(s, f, r)
	if p.values == nil {
		return collect(limit, f, func(fn func(events.Event) bool) error {
			return s.Scan(ctx, r, f.Descending, fn)
		})
	}
	// Each value's scan is in key order; merge them and keep the first
	// limit.
	var out []events.Event
	for _, v := range slices.Compact(slices.Sorted(slices.Values(p.values))) {
		found, err := collect(limit, f, func(fn func(events.Event) bool) error {
			return s.ScanIndex(ctx, p.index, v, r, f.Descending, fn)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	Sort(out, f.Descending)
	return out[:min(len(out), limit)], nil
}

// collect runs scan and keeps the first limit events that match f.
func collect(limit int, f Filter, scan func(func(events.Event) bool) error) ([]events.Event, error) {
	var out []events.Event
	err := scan(func(e events.Event) bool {
		if f.Match(e) {
			out = append(out, e)
		}
		return len(out) < limit
	})
	return out, err
}

// Sort orders evs by key, or by reverse key if descending.
func Sort(evs []events.Event, descending bool) {
	slices.SortFunc(evs, func(a, b events.Event) int {
		c := crdt.KeyOf(a).Compare(crdt.KeyOf(b))
		if descending {
			return -c
		}
		return c
	})
}
