package crdt

import (
	"context"
	"fmt"

	"github.com/scopemesh/scopemesh/crdt/memset"
	"github.com/scopemesh/scopemesh/events"
)

// backend keeps a set's events and their secondary index entries: a
// go-datastore (datastoreBackend) or, for a set that lives only in memory,
// a memset.Store (memoryBackend). The
// ordered index of every key, with its counts and sums, lives in the Set
// itself, whatever the backend.
//
// A backend is safe for concurrent use and never calls back into the Set.
// The memory backend calls fn without holding its lock; the datastore one
// calls it from the datastore's listing, which must let fn read the
// datastore meanwhile (Pebble's and go-datastore's map datastore do), so fn may use the set.
type backend interface {
	// write stores recs, sorted by key and without duplicates, with their
	// index entries: all of them or, on error, none. It leaves recs in
	// that order. A datastore backend takes recs to be new (the Set checks
	// its ordered index first); the memory one skips those it holds.
	// Readers see an event no later than its index entries.
	write(ctx context.Context, recs []record) error
	// event returns the events.Marshal encoding of the event with key k,
	// which the caller must not modify, or an error matching ErrNotFound.
	event(ctx context.Context, k Key) ([]byte, error)
	// keyOf returns the key of the event with ID id, or an error matching
	// ErrNotFound.
	keyOf(ctx context.Context, id events.ID) (Key, error)
	// list calls fn with the keys index i lists under value, in key order
	// (reverse order if descending), until fn returns false. It may start
	// before r in scan order (fn skips what lies outside it) but not
	// after. Keys that share value's digest come too: the caller checks
	// each event with indexed.
	list(ctx context.Context, i Index, value string, r Range, descending bool, fn func(Key) bool) error
	// expire deletes every event below before, with its index entries,
	// in atomic steps, and reports what it deleted. The Set bounds how
	// many that is.
	expire(ctx context.Context, before Key) (expiry, error)
	// saveHorizon keeps h as the set's horizon, durably if the backend is.
	saveHorizon(ctx context.Context, h Key) error
	// bytes returns roughly how many bytes the backend holds: on disk, or
	// in memory.
	bytes(ctx context.Context) (total, reclaimable int64, err error)
}

// record is an event on its way into the store, with what the indexes
// file it under; the memory set's type, which the datastore takes too.
type record = memset.Record

// Index names a secondary index of the set.
type Index int

// The secondary indexes.
const (
	ByCorrelation Index = iota // value: a TraceID's hex form
	ByNode                     // value: the origin node
	ByKind                     // value: the kind
)

func (i Index) String() string {
	switch i {
	case ByCorrelation:
		return "correlation"
	case ByNode:
		return "node"
	case ByKind:
		return "kind"
	}
	return fmt.Sprintf("Index(%d)", int(i))
}

// digest is the 64-bit FNV-1a hash under which the node and kind indexes,
// and the counts of events per node and per kind, file a value. Two values
// with one digest share an index entry and a count; readers check each
// event's value (indexed), so that costs reads, never wrong answers.
func digest(value string) uint64 {
	// hash/fnv's New64a, written out: converting value to a []byte for
	// it would copy it.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(value); i++ {
		h ^= uint64(value[i])
		h *= prime
	}
	return h
}

// indexed reports whether index i lists e under value.
func indexed(i Index, e events.Event, value string) bool {
	switch i {
	case ByNode:
		return e.Node == value
	case ByKind:
		return e.Kind == value
	}
	return true // the correlation index uses the whole trace ID
}
