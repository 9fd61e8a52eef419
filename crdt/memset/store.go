package memset

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
	"github.com/scopemesh/scopemesh/events"
)

// Key is the set's key: an event's encoded time, then its ID.
type Key = keytree.Key

// Store keeps a set's events and their secondary indexes in memory.
//
// A Store is safe for concurrent use. One sync.RWMutex guards the event
// table, the slabs and the node and kind indexes; the index by trace is in
// shards, each under a lock of its own, which writers take after that
// lock, in parallel. No method holds a lock while it calls the caller's
// code.
type Store struct {
	mu struct {
		sync.RWMutex
		events idTable // finds each event by ID
		// slabs hold the events' encodings back to back, each slab
		// slabSize bytes or, for an event larger than that, the event
		// alone. Slabs only grow, and a stored encoding never changes;
		// a slab whose events have all expired is dropped (nil).
		slabs [][]byte
		// live counts the unexpired events in each slab.
		live []int32
		// byNode and byKind file events under the digest of their
		// origin node and of their kind.
		byNode, byKind valueLists
	}

	// traces is the index by trace, in shards by trace ID: finding a
	// trace's list is the costliest step of a write, and writers take
	// their shards in parallel.
	traces [traceShards]traceShard
}

// New returns an empty Store.
func New() *Store {
	s := &Store{}
	s.mu.events = newIDTable()
	return s
}

// Record is an event on its way into a set: X.Event(), stored as X.Wire()
// under Key. Node and Kind are the digests of its origin and kind, and
// Trace its correlation (zero if none), worked out once, before any lock
// is taken: sorts and index updates read them many times, and reading them
// through X copies the whole event.
type Record struct {
	X          events.Encoded
	Key        Key
	Node, Kind uint64
	Trace      events.TraceID
	// Shared is whether X's wire form is memory of the caller of a merge
	// or an add, reused once the call returns. Write, or Own, replaces it
	// with a copy of the set's own.
	Shared bool
}

// Own gives r a wire form of its own if its memory is the caller's.
func (r *Record) Own() {
	if r.Shared {
		r.X.MoveTo(nil)
		r.Shared = false
	}
}

// Index names one of a Store's secondary indexes.
type Index int

// The secondary indexes.
const (
	ByTrace Index = iota // value: TraceValue of the trace ID
	ByNode               // value: DigestValue of the origin node's digest
	ByKind               // value: DigestValue of the kind's digest
)

// Value is what an index files an event under: a trace ID, or a node's or
// kind's digest in the first 8 bytes.
type Value [16]byte

// TraceValue returns the value the index by trace files trace's events
// under.
func TraceValue(trace events.TraceID) Value { return Value(trace) }

// DigestValue returns the value the node or kind index files the events
// of a node or kind with digest d under.
func DigestValue(d uint64) Value {
	var v Value
	binary.BigEndian.PutUint64(v[:], d)
	return v
}

// traceShard is a shard of the index by trace.
type traceShard struct {
	sync.RWMutex
	valueLists
}

// traceShards is the number of shards of the index by trace.
const traceShards = 64

// valueLists maps each value an index files events under to their keys.
type valueLists map[Value]*keyList

// insert files k under v.
func (vl *valueLists) insert(v Value, k Key) {
	l := (*vl)[v]
	if l == nil {
		if *vl == nil {
			*vl = make(valueLists)
		}
		l = new(keyList)
		(*vl)[v] = l
	}
	l.insert(k)
}

// slabSize is the size of a slab of event encodings.
const slabSize = 1 << 20

// listChunk is how many keys List takes per read lock: it calls fn
// without the lock held, so that fn may read the set.
const listChunk = 256

// Write stores the events of recs, sorted by key and without duplicates,
// that the Store does not hold, with their index entries, and leaves recs
// in that order. It copies each new event's encoding into the Store and
// points the record at the copy, which never changes; it gives a record
// of an event the Store holds a wire form of its own (Record.Own). Readers
// see an event no later than its index entries.
func (s *Store) Write(recs []Record) {
	s.mu.Lock()
	for i := range recs {
		r := &recs[i]
		// The event first: a reader that finds an index entry finds the
		// event too.
		loc := s.mu.events.add(r.Key)
		if loc == nil {
			// Stored already, by a writer that may not have indexed it
			// yet: this record may be the one reported new.
			r.Own()
			continue
		}
		loc.slab, loc.off, loc.len = s.storeLocked(r)
		s.mu.byNode.insert(DigestValue(r.Node), r.Key)
		s.mu.byKind.insert(DigestValue(r.Kind), r.Key)
	}
	s.mu.Unlock()
	// Every record goes to its trace's list, which holds a key once: a
	// record stored already is there, or will be once the writer that
	// stored it gets there.
	for i := range recs {
		if trace := recs[i].Trace; !trace.IsZero() {
			shard := s.traceShard(trace)
			shard.Lock()
			shard.insert(TraceValue(trace), recs[i].Key)
			shard.Unlock()
		}
	}
}

// traceShard returns the shard of the index by trace that holds trace's
// list.
func (s *Store) traceShard(trace events.TraceID) *traceShard {
	return &s.traces[trace[len(trace)-1]%traceShards]
}

// storeLocked copies r's encoding into the slabs, points r's event at the
// copy, and returns where it went.
//
// REQUIRES: s.mu (write)
func (s *Store) storeLocked(r *Record) (slab, off, length uint32) {
	size := len(r.X.Wire())
	n := len(s.mu.slabs)
	if n == 0 || len(s.mu.slabs[n-1])+size > cap(s.mu.slabs[n-1]) {
		s.mu.slabs = append(s.mu.slabs, make([]byte, 0, max(slabSize, size)))
		s.mu.live = append(s.mu.live, 0)
		n++
	}
	slabp := &s.mu.slabs[n-1]
	at := len(*slabp)
	*slabp = r.X.MoveTo(*slabp)
	r.Shared = false
	s.mu.live[n-1]++
	return uint32(n - 1), uint32(at), uint32(size)
}

// Event returns the encoding of the event with key k, which the caller
// must not modify, and whether the Store holds it.
func (s *Store) Event(k Key) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	loc, ok := s.mu.events.get(k.ID())
	if !ok || loc.key != k {
		return nil, false
	}
	// Later writes append past these bytes and never change them, so the
	// caller may read them after the lock is released.
	end := loc.off + loc.len
	return s.mu.slabs[loc.slab][loc.off:end:end], true
}

// KeyOf returns the key of the event with ID id, and whether the Store
// holds it.
func (s *Store) KeyOf(id events.ID) (Key, bool) {
	s.mu.RLock()
	loc, ok := s.mu.events.get(id)
	s.mu.RUnlock()
	return loc.key, ok
}

// Len returns the number of events the Store holds.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.events.len()
}

// lists returns the lists of index i, which hold v's, and the lock that
// guards them.
func (s *Store) lists(i Index, v Value) (*valueLists, *sync.RWMutex) {
	switch i {
	case ByNode:
		return &s.mu.byNode, &s.mu.RWMutex
	case ByKind:
		return &s.mu.byKind, &s.mu.RWMutex
	}
	shard := s.traceShard(events.TraceID(v))
	return &shard.valueLists, &shard.RWMutex
}

// List calls fn with the keys index i files under v, in key order from
// from (in reverse order from before, if descending), until fn returns
// false or ctx is done. It reads the index a chunk at a time and calls fn
// with no lock held, so fn may use the Store.
func (s *Store) List(ctx context.Context, i Index, v Value, from, before Key, descending bool, fn func(Key) bool) error {
	if i != ByTrace && i != ByNode && i != ByKind {
		return fmt.Errorf("memset: unknown index %d", i)
	}
	chunk := make([]Key, 0, listChunk)
	for {
		chunk = chunk[:0]
		collect := func(k Key) bool {
			chunk = append(chunk, k)
			return len(chunk) < listChunk
		}
		lists, mu := s.lists(i, v)
		mu.RLock()
		if l := (*lists)[v]; l != nil {
			if descending {
				l.descend(before, collect)
			} else {
				l.ascend(from, collect)
			}
		}
		mu.RUnlock()
		for _, k := range chunk {
			if !fn(k) {
				return nil
			}
		}
		if len(chunk) < listChunk {
			return ctx.Err()
		}
		last := chunk[len(chunk)-1]
		if descending {
			before = last
		} else if from = last.Successor(); from == last {
			return ctx.Err() // last was the largest key
		}
	}
}

// Expired is what Expire deleted: how many events, and how many of each
// origin node and kind digest.
type Expired struct {
	Events       int
	Nodes, Kinds map[uint64]int
}

// headerLimits read back the stored events' headers: they were checked
// when they were stored.
var headerLimits = events.Limits{MaxEventBytes: 1 << 30, MaxNodeBytes: 1 << 30, MaxKindBytes: 1 << 30,
	MaxAttrs: 1 << 30, MaxAttrKeyBytes: 1 << 30, MaxAttrValueBytes: 1 << 30, MaxBatchEvents: 1 << 30, MaxBatchBytes: 1 << 30}

// Expire deletes every event whose key lies below before, with its index
// entries: from the node and kind lists, which count them by digest, the
// event table and the slabs, then from their traces' lists, whose traces
// it reads from the events. An event it cannot read back leaves its trace's
// list holding its key, and Expire reports it.
func (s *Store) Expire(before Key) (Expired, error) {
	gone := Expired{Nodes: make(map[uint64]int), Kinds: make(map[uint64]int)}
	traces := make(map[events.TraceID]struct{})
	var bad error
	s.mu.Lock()
	dropLists(s.mu.byNode, before, gone.Nodes, func(k Key) {
		loc, ok := s.mu.events.drop(k.ID())
		if !ok {
			return
		}
		if e, err := headerLimits.UnmarshalHeader(s.mu.slabs[loc.slab][loc.off : loc.off+loc.len]); err != nil {
			bad = fmt.Errorf("memset: event %v: %v", k.ID(), err)
		} else if !e.Correlation.IsZero() {
			traces[e.Correlation] = struct{}{}
		}
		if s.mu.live[loc.slab]--; s.mu.live[loc.slab] == 0 && int(loc.slab) < len(s.mu.slabs)-1 {
			s.mu.slabs[loc.slab] = nil
		}
		gone.Events++
	})
	dropLists(s.mu.byKind, before, gone.Kinds, func(Key) {})
	s.mu.events.compact()
	s.mu.Unlock()
	for t := range traces {
		shard := s.traceShard(t)
		shard.Lock()
		if l := shard.valueLists[TraceValue(t)]; l != nil {
			if l.dropBelow(before, func(Key) {}); l.empty() {
				delete(shard.valueLists, TraceValue(t))
			}
		}
		shard.Unlock()
	}
	return gone, bad
}

// dropLists drops the keys below before from lists, calling fn with each,
// counts them by the digest the list's value holds, and forgets the lists
// left empty.
func dropLists(lists valueLists, before Key, counts map[uint64]int, fn func(Key)) {
	for v, l := range lists {
		if n := l.dropBelow(before, fn); n > 0 {
			counts[binary.BigEndian.Uint64(v[:8])] += n
		}
		if l.empty() {
			delete(lists, v)
		}
	}
}

// Bytes returns roughly how many bytes the Store holds: the slabs in use,
// the event table and the keys of the index lists.
func (s *Store) Bytes() int64 {
	s.mu.RLock()
	n := s.mu.events.bytes()
	for _, slab := range s.mu.slabs {
		n += int64(cap(slab))
	}
	for _, lists := range []valueLists{s.mu.byNode, s.mu.byKind} {
		for _, l := range lists {
			n += l.bytes()
		}
	}
	s.mu.RUnlock()
	for i := range s.traces {
		shard := &s.traces[i]
		shard.RLock()
		for _, l := range shard.valueLists {
			n += l.bytes()
		}
		shard.RUnlock()
	}
	return n
}
