package rbsr

import "github.com/scopemesh/scopemesh/crdt"

// Keys is what one step of reconciliation reads of a set: its keys in
// order, addressed by rank. A step reads through one Keys from start to end,
// so the ranks it computes agree with each other; no rank outlives a step.
// A Keys is used by one goroutine at a time and only during the ReadKeys
// call that handed it out.
type Keys interface {
	// Len returns the number of keys.
	Len() int
	// Rank returns the number of keys below k.
	Rank(k crdt.Key) int
	// At returns the key of rank i, for 0 <= i < Len().
	At(i int) crdt.Key
	// Sum returns the sum, mod 2^256, of the IDs of the keys of rank lo
	// through hi-1, each read as a 256-bit little-endian integer.
	Sum(lo, hi int) [32]byte
	// Keys appends to dst the keys of rank lo through hi-1.
	Keys(dst []crdt.Key, lo, hi int) []crdt.Key
}

// Set is what reconciliation needs of a set of events: ranked keys and the
// sums behind range fingerprints, read consistently, and the horizon below
// which it keeps nothing. *crdt.Set satisfies it.
//
// The set may grow between two ReadKeys calls, never during one.
type Set[K Keys] interface {
	// ReadKeys calls fn with the set's keys, unchanging until fn returns,
	// and returns fn's error, or an error of its own if the set cannot be
	// read (closed).
	ReadKeys(fn func(K) error) error
	// Horizon returns the lowest key the set may hold: what lies below has
	// expired.
	Horizon() crdt.Key
}

// readFunc erases a Set's view type, so that the Reconciler need not be
// generic: a step reads through the Keys interface either way.
func readFunc[K Keys](s Set[K]) func(func(Keys) error) error {
	return func(fn func(Keys) error) error {
		return s.ReadKeys(func(k K) error { return fn(k) })
	}
}
