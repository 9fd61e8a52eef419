package crdt

import (
	"context"
	"fmt"

	"github.com/scopemesh/scopemesh/events"
)

// Range is the half-open key range [From, To). The zero Range is empty;
// All covers every key.
type Range struct {
	From, To Key
}

// All is the range of every key.
var All = Range{From: MinKey, To: MaxKey}

// Contains reports whether k lies in r.
func (r Range) Contains(k Key) bool { return r.From.Compare(k) <= 0 && k.Compare(r.To) < 0 }

// scanChunk is how many keys a scan takes from the ordered index per lock
// acquisition: large enough to amortise the lock, small enough not to hold
// writers back.
const scanChunk = 256

// Scan calls fn with the events whose keys lie in r, in key order (reverse
// order if descending), until fn returns false. Events added during the scan
// may or may not be seen.
func (s *Set) Scan(ctx context.Context, r Range, descending bool, fn func(events.Event) bool) error {
	if err := s.use(); err != nil {
		return err
	}
	defer s.inUse.Done()
	cursor := s.aboveHorizon(r)
	for {
		keys, err := s.nextKeys(cursor, descending)
		if err != nil || len(keys) == 0 {
			return err
		}
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := s.getKey(ctx, k)
			if err != nil {
				return err
			}
			if !fn(e) {
				return nil
			}
		}
		last := keys[len(keys)-1]
		if descending {
			cursor.To = last
		} else {
			cursor.From = last.Successor()
		}
	}
}

// nextKeys returns up to scanChunk keys of r from its start (or its end, if
// descending).
func (s *Set) nextKeys(r Range, descending bool) ([]Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	lo, hi := s.ranksLocked(r)
	n := min(hi-lo, scanChunk)
	if n <= 0 {
		return nil, nil
	}
	keys := make([]Key, 0, n)
	collect := func(_ int, k Key) bool {
		keys = append(keys, k)
		return len(keys) < n
	}
	if descending {
		s.mu.tree.Descend(hi, collect)
	} else {
		s.mu.tree.Ascend(lo, collect)
	}
	return keys, nil
}

// ranksLocked returns the ranks [lo, hi) of the keys in r.
//
// REQUIRES: s.mu (read)
func (s *Set) ranksLocked(r Range) (lo, hi int) {
	lo = s.mu.tree.Rank(r.From)
	hi = s.mu.tree.Rank(r.To)
	return lo, max(lo, hi)
}

// Count returns the number of events whose keys lie in r.
func (s *Set) Count(r Range) int {
	r = s.aboveHorizon(r)
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo, hi := s.ranksLocked(r)
	return hi - lo
}

// IndexCount returns the number of events index i lists under value (a
// bound: values sharing a digest count together, and events below the
// horizon count until Expire has deleted them), or -1 if the set keeps no
// count for that index (ByCorrelation).
func (s *Set) IndexCount(i Index, value string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch i {
	case ByNode:
		return s.mu.nodes[digest(value)]
	case ByKind:
		return s.mu.kinds[digest(value)]
	}
	return -1
}

// ScanIndex calls fn with the events that index i lists under value whose
// keys lie in r, in key order (reverse order if descending), until fn
// returns false.
func (s *Set) ScanIndex(ctx context.Context, i Index, value string, r Range, descending bool, fn func(events.Event) bool) error {
	if err := s.use(); err != nil {
		return err
	}
	defer s.inUse.Done()
	r = s.aboveHorizon(r)
	// visit handles one index entry; it reports whether to go on.
	var failed error
	visit := func(k Key) bool {
		if !r.Contains(k) {
			// Past the end of r in scan order, or not there yet.
			if descending {
				return k.Compare(r.From) >= 0
			}
			return k.Compare(r.To) < 0
		}
		e, err := s.getKey(ctx, k)
		if err != nil {
			failed = err
			return false
		}
		return !indexed(i, e, value) || fn(e)
	}
	if err := s.store.list(ctx, i, value, r, descending, visit); err != nil {
		return fmt.Errorf("crdt: scanning %v index: %w", i, err)
	}
	if failed != nil {
		return failed
	}
	return ctx.Err()
}
