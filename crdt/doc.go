// Package crdt holds the replica every scopemesh node keeps: a grow-only set
// (G-Set) of events, persisted in a go-datastore (New) or held in memory
// (NewMemory), and ordered by key — the event's hybrid logical time, then
// its ID.
//
// # Usage
//
//	set, err := crdt.New(ctx, ds, crdt.Options{})
//	added, err := set.Merge(ctx, batch)   // union; returns the new events
//	n, err := set.MergeEncoded(ctx, xs)   // the same for events.Encoded, not encoded again
//	err = set.Scan(ctx, crdt.All, false, func(e events.Event) bool { …; return true })
//	sum, n := set.Sum(crdt.Range{From: a, To: b}) // what a range fingerprint hashes
//	w := set.Watch(0)                     // every newly added event
//	e, err := w.Next(ctx)
//	xs, err := w.Available(nil, 0)        // what it holds now, without waiting
//
// Reconciliation with a peer's set (package rbsr) reads the set through
// ReadKeys: its keys by rank and the sums of ranks' IDs, consistent for the
// length of one call.
//
// # Invariants
//
//   - Merge is set union: idempotent, commutative and associative, so
//     replicas that merged the same events, in any order and any grouping,
//     hold the same set and list it in the same order.
//   - An event's ID is the hash of its content, so an ID names one content
//     and no two versions of an event can conflict. Merge verifies every
//     event of a batch before writing any: a batch with one bad event writes
//     nothing.
//   - Merge and Add return only after the datastore committed the batch;
//     readers, fingerprints and watches see an event only from then on.
//   - Each new event is delivered to each Watch once, or reported in a
//     GapError; a slow reader never blocks writers.
//
// # The ordered index
//
// go-datastore's query API cannot seek, so the set keeps every key in an
// in-memory B+tree, rebuilt at New from the node index (one keys-only scan).
// Inner nodes carry the count and the sum of the IDs below them, so a range's
// count, its fingerprint and its k-th key cost O(log n). Beside it, a map
// in memory finds an event's key by its ID. Secondary indexes (by
// correlation, origin node and kind) live in the datastore, written in the
// same batch as the event; a memory set keeps them as sorted key lists
// (package memset). The datastore's layout carries a version
// (store.go): New rewrites a store in an older layout in place, a batch at
// a time, and refuses one in a layout it does not know (layout.go).
//
// # Cost per event
//
// Events arrive as events.Encoded wherever they can — sealed by Record,
// decoded from a batch — and the set stores their wire form as it is: an
// event is encoded and hashed once at its origin and hashed once more, on
// decoding, at each receiver. Concurrent writes to a datastore share
// commits: a writer leads a group of those that arrived meanwhile, whose
// batch goes in key order to spare Pebble's memtable most of its search
// (groupcommit.go). A memory set stores events and updates its ordered
// index under a lock each, so that one writer's store overlaps another's
// index update. Its index by trace, the costliest to update, is
// in shards with locks of their own, which writers take after the first
// lock, in parallel.
//
// # Hazards
//
//   - Range sums add IDs mod 2^256: cheap to update, not collision
//     resistant against a party choosing the IDs (package rbsr says what
//     that costs reconciliation).
//   - The set trusts its datastore: a store written by something else, or
//     corrupted, returns ErrCorrupt on read rather than wrong events.
package crdt
