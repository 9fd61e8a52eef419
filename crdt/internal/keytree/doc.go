// Package keytree is the event set's in-memory ordered index: every key, in
// (HLC timestamp, event ID) order, in a B+tree that also knows, for every
// subtree, how many keys it holds and what their IDs sum to.
//
// Range-based set reconciliation (the Negentropy scheme) compares two sets by
// fingerprints of key ranges: a count and the sum of the IDs modulo 2^256.
// Keeping those aggregates in the inner nodes makes the fingerprint of any
// rank range cost O(log n) instead of a walk over the range, and makes "the
// k-th key" and "how many keys sort below k" O(log n) too, which is how the
// reconciler cuts a range into buckets.
//
// # Usage
//
//	t := keytree.Build(keysFromDisk) // at open; O(n) when already sorted
//	t.Insert(k)                      // for each event added
//	lo, hi := t.Rank(from), t.Rank(to)
//	sum, count := t.Sum(lo, hi), hi-lo
//	mid := t.At(lo + (hi-lo)/2)
//
// # Invariants
//
//   - Keys are unique and ascend by bytes.Compare; Insert of a present key
//     changes nothing and returns false.
//   - For every inner node and child, the stored count and sum equal the
//     number of keys below that child and the sum of their IDs, and the
//     tree's own count and sum cover all keys. Insert keeps them exact on
//     the path it descends.
//   - All leaves are at the same depth, and the root is an inner node
//     whenever the tree is not empty.
//   - The tree only grows. Nothing is ever removed, so no node is ever
//     merged and there is no minimum fill; what keeps nodes full is the
//     split policy (see Tree.Insert) and Build.
//
// # Hazards
//
//   - A Tree does no locking: Insert must not run concurrently with anything
//     else on the same Tree, and an Ascend or Descend callback must not
//     insert.
//   - Build sorts an unsorted input slice in place.
//   - Sum is only as good as the IDs: the index trusts that the last 32
//     bytes of each key are the event's real ID; checking that is the
//     caller's job before inserting.
package keytree
