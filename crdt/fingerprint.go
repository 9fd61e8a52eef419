package crdt

import "github.com/scopemesh/scopemesh/crdt/internal/keytree"

// Sum returns the sum, mod 2^256, of the IDs of the events whose keys lie in
// r, each read as a 256-bit little-endian integer, and their number: what a
// range fingerprint of reconciliation (package rbsr) summarises. It costs
// O(log n).
func (s *Set) Sum(r Range) (sum [32]byte, count int) {
	r = s.aboveHorizon(r)
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo, hi := s.ranksLocked(r)
	return s.mu.tree.Sum(lo, hi), hi - lo
}

// ReadKeys calls fn with the set's ordered index, under the set's read lock,
// so the set does not change until fn returns. It returns fn's error, or
// ErrClosed. fn must not call the set's methods that write.
func (s *Set) ReadKeys(fn func(RankedKeys) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	return fn(RankedKeys{s.mu.tree})
}

// RankedKeys is the set's keys in order, addressed by rank, as ReadKeys
// hands them out: valid only until the call that handed it out returns.
type RankedKeys struct{ t *keytree.Tree }

// Len returns the number of keys.
func (v RankedKeys) Len() int { return v.t.Len() }

// Rank returns the number of keys below k.
func (v RankedKeys) Rank(k Key) int { return v.t.Rank(keytree.Key(k)) }

// At returns the key of rank i, for 0 <= i < Len().
func (v RankedKeys) At(i int) Key { return Key(v.t.At(i)) }

// Sum returns the sum of the IDs of the keys of rank lo through hi-1 (see
// Set.Sum).
func (v RankedKeys) Sum(lo, hi int) [32]byte { return v.t.Sum(lo, hi) }

// Keys appends to dst the keys of rank lo through hi-1.
func (v RankedKeys) Keys(dst []Key, lo, hi int) []Key {
	if lo < hi {
		v.t.Ascend(lo, func(i int, k keytree.Key) bool {
			dst = append(dst, Key(k))
			return i+1 < hi
		})
	}
	return dst
}
