package query

import (
	"errors"
	"fmt"
	"slices"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// Bounds of a Filter.
const (
	DefaultLimit = 1000    // results of a query whose Limit is 0
	MaxLimit     = 100_000 // the largest Limit accepted
	MaxValues    = 64      // the most Nodes, Kinds or Attrs a filter may name

	// MaxRemoteLimit is the largest Limit peers answer, and so of a
	// cluster query (Node.QueryCluster lowers a larger one to it): its
	// answers cross the network, and the asker merges them in memory.
	MaxRemoteLimit = 10_000
)

// ErrInvalidFilter reports a filter that cannot be run; the wrapping error
// says why.
var ErrInvalidFilter = errors.New("query: invalid filter")

// ErrExpiredCursor reports a cursor (Filter.After) below the replica's
// retention horizon: the events after it that the listing was at have
// expired, and a listing from the horizon goes on with what is left.
var ErrExpiredCursor = errors.New("query: the cursor has expired")

// Filter selects events. Empty fields select everything: an event matches
// when it matches every field that is set.
type Filter struct {
	Correlation events.TraceID    // the trace; zero: any
	Nodes       []string          // origin nodes, any of them; empty: any
	Kinds       []string          // kinds, any of them; empty: any
	Attrs       map[string]string // every pair must be among the event's Attrs
	Since       hlc.Timestamp     // events at or after it; zero: no bound
	Until       hlc.Timestamp     // events before it; zero: no bound
	Limit       int               // most events returned; 0: DefaultLimit; at most MaxRemoteLimit from peers
	After       crdt.Key          // resume after this key in result order; zero: from the start
	Descending  bool              // newest first
}

// Validate reports every problem of f in one error matching
// ErrInvalidFilter.
func (f Filter) Validate() error {
	var errs []error
	if !f.Until.IsZero() && f.Since.Compare(f.Until) > 0 {
		errs = append(errs, fmt.Errorf("Since %v is after Until %v", f.Since, f.Until))
	}
	if f.Limit < 0 {
		errs = append(errs, fmt.Errorf("Limit %d is negative", f.Limit))
	}
	if f.Limit > MaxLimit {
		errs = append(errs, fmt.Errorf("Limit %d is above the maximum %d", f.Limit, MaxLimit))
	}
	for name, n := range map[string]int{"Nodes": len(f.Nodes), "Kinds": len(f.Kinds), "Attrs": len(f.Attrs)} {
		if n > MaxValues {
			errs = append(errs, fmt.Errorf("%s has %d values, above the maximum %d", name, n, MaxValues))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidFilter, errors.Join(errs...))
}

// limit returns the effective result limit.
func (f Filter) limit() int {
	if f.Limit == 0 {
		return DefaultLimit
	}
	return f.Limit
}

// keyRange returns the key range f selects, narrowed by the cursor.
func (f Filter) keyRange() crdt.Range {
	r := crdt.Range{From: crdt.TimeKey(f.Since), To: crdt.MaxKey}
	if !f.Until.IsZero() {
		r.To = crdt.TimeKey(f.Until)
	}
	if !f.After.IsZero() {
		if f.Descending {
			if f.After.Compare(r.To) < 0 {
				r.To = f.After
			}
		} else if next := f.After.Successor(); next.Compare(r.From) > 0 {
			r.From = next
		}
	}
	return r
}

// Match reports whether e passes every field of f except Limit.
func (f Filter) Match(e events.Event) bool {
	if !f.Correlation.IsZero() && e.Correlation != f.Correlation {
		return false
	}
	if len(f.Nodes) > 0 && !slices.Contains(f.Nodes, e.Node) {
		return false
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, e.Kind) {
		return false
	}
	for k, v := range f.Attrs {
		if got, ok := e.Attrs[k]; !ok || got != v {
			return false
		}
	}
	return f.keyRange().Contains(crdt.KeyOf(e))
}

// CursorOf returns the Filter.After value that resumes a listing after e.
func CursorOf(e events.Event) crdt.Key { return crdt.KeyOf(e) }
