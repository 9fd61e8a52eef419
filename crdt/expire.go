package crdt

import (
	"context"
	"fmt"

	"github.com/scopemesh/scopemesh/events"
)

// Retention. A set keeps the events at or above its horizon, a key that
// only rises: Expire raises it and deletes what lies below, a bounded
// batch at a time. From the moment the horizon rises, the set behaves as
// if nothing below it were there: merges leave such events out, Add
// refuses them, reads and counts skip them, whether or not their deletion
// has finished; so an expired event never comes back, whoever offers it.
// A datastore set keeps its horizon in the store, and an expiry cut short
// by a crash goes on at the next Expire.

// Pruner is implemented by datastores that read a key range with its
// values, and delete key ranges in a batch, faster than go-datastore's
// queries and key-by-key deletes can. A set expires events through it
// when it can.
type Pruner interface {
	// ListRange calls fn with each key in [start, end) and its value, in
	// key order, until fn returns false. The slices are valid only during
	// the call.
	ListRange(ctx context.Context, start, end []byte, fn func(key, value []byte) bool) error
	// PruneBatch commits, in one atomic batch, the deletions fill passes
	// to del (one key) and delRange (the keys in [start, end)), or none of
	// them if fill or the commit fails.
	PruneBatch(ctx context.Context, fill func(del func(key []byte) error, delRange func(start, end []byte) error) error) error
}

// Reclaimer is implemented by datastores that tell how much of their disk
// usage is data already deleted, which they hand back as they compact.
type Reclaimer interface {
	ReclaimableBytes(ctx context.Context) (uint64, error)
}

// storedLimits read back the events a store holds: they were checked
// against the set's limits, whatever those were, when they were stored.
var storedLimits = events.Limits{MaxEventBytes: 1 << 30, MaxNodeBytes: 1 << 30, MaxKindBytes: 1 << 30,
	MaxAttrs: 1 << 30, MaxAttrKeyBytes: 1 << 30, MaxAttrValueBytes: 1 << 30, MaxBatchEvents: 1 << 30, MaxBatchBytes: 1 << 30}

// expiry is what a backend deleted: how many events, and how many of each
// origin node and kind digest.
type expiry struct {
	n            int
	nodes, kinds map[uint64]int
}

func newExpiry() expiry {
	return expiry{nodes: make(map[uint64]int), kinds: make(map[uint64]int)}
}

// Horizon returns the key below which the set keeps no events: MinKey
// until Expire first raises it.
func (s *Set) Horizon() Key {
	if h := s.horizon.Load(); h != nil {
		return *h
	}
	return MinKey
}

// Expired returns how many events Expire has deleted since the set was
// made or opened, and how many events merges have left out because they
// lay below the horizon.
func (s *Set) Expired() (deleted, refused uint64) {
	return s.expired.Load(), s.refused.Load()
}

// Bytes returns roughly how many bytes the set takes: on disk for a
// datastore that tells (go-datastore's PersistentDatastore), in memory for
// a memory set; 0 if unknown. Of those, reclaimable are held by deleted
// events until the datastore compacts them away, if it tells (Reclaimer).
func (s *Set) Bytes(ctx context.Context) (total, reclaimable int64, err error) {
	if err := s.use(); err != nil {
		return 0, 0, err
	}
	defer s.inUse.Done()
	total, reclaimable, err = s.store.bytes(ctx)
	if _, ok := s.store.(memoryBackend); ok {
		s.mu.RLock()
		total += int64(s.mu.tree.Bytes())
		s.mu.RUnlock()
	}
	return total, min(reclaimable, total), err
}

// KeyAt returns the key of the event of rank i among those at or above
// the horizon, counting from the oldest, and false if there is none.
func (s *Set) KeyAt(i int) (Key, bool) {
	h := s.Horizon()
	s.mu.RLock()
	defer s.mu.RUnlock()
	i += s.mu.tree.Rank(h)
	if i < 0 || i >= s.mu.tree.Len() {
		return Key{}, false
	}
	return s.mu.tree.At(i), true
}

// Expire raises the set's horizon to before, if it lies above it, and
// deletes events below the horizon, oldest first: at most limit of them
// (every one if limit is 0), each with its index entries. It returns how
// many it deleted and whether events below the horizon remain, for
// another call. Calls run one at a time; readers and writers go on
// meanwhile, but for a moment while the ordered index drops its oldest
// keys.
func (s *Set) Expire(ctx context.Context, before Key, limit int) (deleted int, more bool, err error) {
	if err := s.use(); err != nil {
		return 0, false, err
	}
	defer s.inUse.Done()
	s.expiring.Lock()
	defer s.expiring.Unlock()
	if err := s.raiseHorizon(ctx, before); err != nil {
		return 0, false, err
	}
	h := s.Horizon()
	s.mu.RLock()
	below := s.mu.tree.Rank(h)
	cut := h
	if limit > 0 && below > limit {
		cut = s.mu.tree.At(limit)
	}
	s.mu.RUnlock()
	if below == 0 {
		return 0, false, nil
	}
	gone, err := s.store.expire(ctx, cut)
	if err != nil {
		return 0, true, fmt.Errorf("crdt: expiring events below %v: %w", cut, err)
	}
	s.mu.Lock()
	n := s.mu.tree.DropBelow(cut)
	subtractCounts(s.mu.nodes, gone.nodes)
	subtractCounts(s.mu.kinds, gone.kinds)
	s.mu.Unlock()
	s.expired.Add(uint64(n))
	return n, below > n, nil
}

// raiseHorizon sets the horizon to before if it lies above it. It is
// stored before it is set: a set that has refused events below a
// horizon never reopens below it.
func (s *Set) raiseHorizon(ctx context.Context, before Key) error {
	if s.Horizon().Compare(before) >= 0 {
		return nil
	}
	if err := s.store.saveHorizon(ctx, before); err != nil {
		return fmt.Errorf("crdt: saving the horizon: %w", err)
	}
	s.horizon.Store(&before)
	return nil
}

// aboveHorizon returns r without the part below the horizon.
func (s *Set) aboveHorizon(r Range) Range {
	if h := s.Horizon(); r.From.Compare(h) < 0 {
		r.From = h
	}
	return r
}

// subtractCounts takes gone's counts from counts, forgetting those that
// reach zero.
func subtractCounts(counts, gone map[uint64]int) {
	for d, n := range gone {
		if counts[d] -= n; counts[d] <= 0 {
			delete(counts, d)
		}
	}
}
