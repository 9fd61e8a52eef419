// Package memset is the event set's in-memory engine: the storage behind
// crdt.NewMemory, for nodes with nothing to persist. It keeps each event's
// wire encoding, finds it by key or by ID, and keeps the set's three
// secondary indexes (by trace, by origin node, by kind) as sorted key lists.
// The set's ordered index of every key, with its counts and fingerprints,
// is not here: package crdt keeps it over either engine.
//
// Package crdt imports memset, never the reverse: a Record, the key type
// (crdt.Key is Key) and what the indexes file events under are defined
// here or below, and crdt's memory backend adapts a Store to the set.
//
// # Usage
//
//	s := memset.New()
//	s.Write(recs)                          // recs sorted by key; copies each new encoding
//	data, ok := s.Event(k)                 // the stored encoding
//	k, ok = s.KeyOf(id)
//	err := s.List(ctx, memset.ByNode, memset.DigestValue(d), from, before, false, fn)
//	gone, err := s.Expire(horizon)         // deletes every event below horizon
//
// # Layout
//
//   - Encodings are copied back to back into slabs of 1 MiB, which only
//     grow; an encoding never moves or changes once written, so Event
//     returns it without a copy. A slab is dropped once all its events
//     have expired.
//   - A hash table of its own (idtable.go) finds an event's slab location
//     by ID: it takes less CPU per event than a Go map, and its entries
//     hold no pointers, so the garbage collector never scans them.
//   - Each index value's keys sit in a keyList: sorted chunks of at most
//     128 keys, appended to in the common case (an origin's events arrive
//     in time order).
//
// # Concurrency
//
// A Store is safe for concurrent use. One sync.RWMutex guards the event
// table, the slabs and the node and kind lists; the trace lists are in 64
// shards, each under its own sync.RWMutex, which Write takes after
// releasing the first lock, so writers update them in parallel. List reads
// a chunk of keys under a read lock and calls its callback with no lock
// held.
//
// # Hazards
//
//   - Write trusts its records: the key, digests and trace must be those of
//     the encoding. Package crdt checks and computes them before writing.
//   - Expire reads each expired event's trace from its stored encoding; an
//     encoding it cannot read leaves a stale key in its trace's list (List
//     callers check each event) and is reported as an error.
package memset
