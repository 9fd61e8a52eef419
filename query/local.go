package query

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"iter"
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
	var out []events.Event
	if err := Each(ctx, s, f, func(e events.Event) bool {
		out = append(out, e)
		return true
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// Each calls fn with the events of the set that match f, in key order
// (newest first if f.Descending), at most f's limit of them, until fn
// returns false. It reads the set as fn asks for more, so a caller that
// streams the events on holds one at a time, not the whole answer.
func Each(ctx context.Context, s *crdt.Set, f Filter, fn func(events.Event) bool) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if h := s.Horizon(); !f.After.IsZero() && f.After.Compare(h) < 0 {
		return fmt.Errorf("%w: the cursor lies at %v, below the horizon %v: the events there have expired; query from the horizon", ErrExpiredCursor, f.After.Time(), h.Time())
	}
	r, left := f.keyRange(), f.limit()
	var ended error // ctx's, if it ended the scan
	yield := func(e events.Event) bool {
		if ended = ctx.Err(); ended != nil {
			return false
		}
		if !f.Match(e) {
			return true
		}
		left--
		return fn(e) && left > 0
	}
	p := choosePlan(s, f, r)
	if p.values == nil {
		return cmp.Or(s.Scan(ctx, r, f.Descending, yield), ended)
	}
	// Each value's scan is in key order, and no event is listed under two
	// values of one index: merging the scans gives the order of the whole.
	values := slices.Compact(slices.Sorted(slices.Values(p.values)))
	scans := make([]func(func(events.Event) bool) error, len(values))
	for i, v := range values {
		scans[i] = func(fn func(events.Event) bool) error {
			return s.ScanIndex(ctx, p.index, v, r, f.Descending, fn)
		}
	}
	return cmp.Or(mergeScans(scans, f.Descending, yield), ended)
}

// mergeScans calls yield with the events of scans, each in key order
// (reverse order if descending), merged into one such order, until yield
// returns false or a scan fails. Each scan runs as a coroutine (iter.Pull)
// one event ahead of the merge.
func mergeScans(scans []func(func(events.Event) bool) error, descending bool, yield func(events.Event) bool) error {
	if len(scans) == 1 {
		return scans[0](yield)
	}
	heads := make([]*scanHead, len(scans))
	for i, scan := range scans {
		c := &scanHead{}
		c.next, c.stop = iter.Pull(func(fn func(events.Event) bool) { c.err = scan(fn) })
		heads[i] = c
	}
	defer func() {
		for _, c := range heads {
			c.stop()
		}
	}()
	h := keyHeap[*scanHead]{descending: descending}
	for _, c := range heads {
		if c.advance() {
			h.items = append(h.items, c)
		} else if c.err != nil {
			return c.err
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		c := h.items[0]
		if !yield(c.e) {
			return nil
		}
		switch {
		case c.advance():
			heap.Fix(&h, 0)
		case c.err != nil:
			return c.err
		default:
			heap.Pop(&h)
		}
	}
	return nil
}

// scanHead is a scan paused at its next event.
type scanHead struct {
	next func() (events.Event, bool)
	stop func()
	e    events.Event
	key  crdt.Key
	err  error // the scan's, once next has reported its end
}

func (c *scanHead) heapKey() crdt.Key { return c.key }

// advance moves c to the scan's next event, or reports false at its end.
func (c *scanHead) advance() bool {
	e, ok := c.next()
	c.e, c.key = e, crdt.KeyOf(e)
	return ok
}
