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
//	fp := set.Fingerprint(crdt.Range{From: a, To: b})
//	w := set.Watch(0)                     // every newly added event
//	e, err := w.Next(ctx)
//	xs, err := w.Available(nil, 0)        // what it holds now, without waiting
//
// Reconciliation with a peer's set, the initiator's loop (the responder
// answers each message with its own Reconciler's RespondListing, and keeps
// the IDs its answers listed, in order, to serve what the initiator then
// asks for):
//
//	rec, err := set.NewReconciler(crdt.ReconcileOptions{})
//	msg, err := rec.Initiate()
//	for !done {
//		reply := exchange(msg)            // the caller's transport
//		msg, done, err = rec.Reconcile(reply)
//	}
//	rec.Have()                            // IDs only this side holds
//	rec.Need()                            // the peer's only: numbers among the IDs its answers listed
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
//   - Fingerprints sum IDs mod 2^256. Sums are cheap to update but not
//     collision resistant against a party who chooses the summands: with
//     Wagner's generalized birthday attack, a peer able to pick many IDs could
//     build two different ranges with equal fingerprints, and reconciliation
//     would then miss a difference. IDs are SHA-256 hashes of event content,
//     so crafting them means grinding event content, and only cluster
//     members can put events in the set; what this protects against is
//     accidental collisions (2^-128), not a malicious member.
//   - Reconciliation lists the IDs of small ranges by prefix, 4 to 7
//     bytes of each, and the responder matches its IDs against them. Two
//     IDs sharing a prefix would hide each other, so the responder's answer
//     carries the fingerprint of its events in those ranges that matched a
//     listed prefix, and the initiator checks that its listed IDs the
//     responder matched sum to it; on a mismatch it lists those ranges
//     again in whole IDs. Have and Need are therefore as exact as
//     the fingerprints (above): a member grinding IDs that share prefixes
//     costs a round trip, not a missed event. A responder that lies can
//     make Have and Need wrong, but no more: Need names events to fetch,
//     which are checked against their IDs on arrival, and Have events to
//     send. MaxRounds bounds how long a responder can keep a session going.
//   - The set trusts its datastore: a store written by something else, or
//     corrupted, returns ErrCorrupt on read rather than wrong events.
package crdt
