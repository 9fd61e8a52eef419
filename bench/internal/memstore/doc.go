// Package memstore is an ordered in-memory go-datastore on which the query
// benchmark fills a datastore set of a million events in the layout Pebble
// holds. It is the benchmark's, not the library's: a node without a data
// directory keeps its events in the memory set (crdt/memset) and its other
// records in go-datastore's map datastore.
//
// That layout keeps each event under /e/<key> and its index entries under
// prefixes such as /n/<node>/<key>, and reads them with keys-only prefix
// queries in key order that often stop after a few results. go-datastore's
// MapDatastore answers every such query by reading the whole map, and an
// in-memory Pebble spends its time flushing and compacting. Store keeps the
// keys in a B-tree instead, so a query seeks to its prefix and reads only
// the entries its caller consumes.
//
// # Usage
//
//	s := memstore.New()
//	defer s.Close()
//	err := s.Put(ctx, datastore.NewKey("/n/ab/01"), nil)
//	res, err := s.Query(ctx, query.Query{
//		Prefix:   "/n/ab",
//		KeysOnly: true,
//		Orders:   []query.Order{query.OrderByKeyDescending{}},
//	})
//	defer res.Close()
//	for r, ok := res.NextSync(); ok; r, ok = res.NextSync() { … }
//
// # Guarantees
//
//   - A Store is safe for concurrent use by multiple goroutines. One
//     sync.RWMutex guards the tree; no method holds it while caller code
//     runs.
//   - Values are copied on the way in and on the way out: Put and Batch.Put
//     copy the caller's slice, and Get and query results return copies the
//     caller may modify.
//   - Batch.Commit applies its writes under one write lock: a Get, Has or
//     GetSize, and each chunk a query reads, sees all of a batch or none
//     of it.
//   - Queries follow go-datastore's semantics (prefix "/a" selects "/a/b"
//     but neither "/a" nor "/ab"; then filters, orders, offset, limit) and
//     stream in key order when the order allows; see Store.Query.
//   - The store starts no goroutines.
//
// # Hazards
//
//   - A query is not a snapshot. It reads up to 256 entries per read lock
//     and holds no lock between results, so that its caller can use the
//     store meanwhile (Go's RWMutex deadlocks on a recursive read lock
//     once a writer waits). A batch committed while a query runs can show
//     in it in part: the writes ahead of the query's position, and not
//     those behind it.
//   - Queries ordered by anything but the key, first, read and sort every
//     entry under their prefix before returning the first.
//   - Close drops the data; there is nothing to persist.
package memstore
