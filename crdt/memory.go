package crdt

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"sync"
	"unsafe"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// NewMemory returns an empty set that keeps its events in memory only, for
// nodes with nothing to persist. It behaves as a set on a datastore does,
// at a fraction of the cost per event: encodings are copied into slabs and
// found by ID through a compact table, and each index value's keys sit in a
// sorted list, with no keys to format and no strings to compare.
func NewMemory(opts Options) *Set {
	return withBackend(newMemoryBackend(), opts, nil, nil, nil)
}

// memoryBackend keeps a set in maps and sorted key lists.
type memoryBackend struct {
	mu struct {
		sync.RWMutex
		// events finds each event by ID. dropped counts the entries
		// expiry deleted since the map was last made afresh: a Go map
		// never shrinks.
		events  map[events.ID]memoryEvent
		dropped int
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

	// traces is the index by correlation, in shards by trace ID, each
	// under a lock of its own. Finding a trace's list is the costliest
	// step of a write — a map of every trace, mostly out of the cache —
	// and writers take it after the lock above, in parallel: it was a
	// third of the time a write held that lock.
	traces [traceShards]traceShard
}

// traceShard is a shard of the index by correlation.
type traceShard struct {
	sync.RWMutex
	valueLists
}

// traceShards is the number of shards of the index by correlation.
const traceShards = 64

// valueLists maps each value an index files events under to their keys.
type valueLists map[indexValue]*keyList

// insert files k under v.
func (vl *valueLists) insert(v indexValue, k Key) {
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

var _ backend = (*memoryBackend)(nil)

// memoryEvent locates an event's encoding in the slabs. It holds no
// pointers, so the garbage collector never scans the event table.
type memoryEvent struct {
	time      [hlc.EncodedLen]byte // the event's key is time, then ID
	slab, off uint32
	len       uint32
}

// slabSize is the size of a slab of event encodings.
const slabSize = 1 << 20

// indexValue is a trace ID, or a node's or kind's digest in the first 8
// bytes.
type indexValue [16]byte

// eventEntryBytes is roughly what an entry of the event table takes: its
// ID and memoryEvent, and the map's spare slots.
const eventEntryBytes = 3 * (int64(len(events.ID{})) + int64(unsafe.Sizeof(memoryEvent{}))) / 2

// memoryChunk is how many keys list takes per read lock: it calls fn
// without the lock held, so that fn may read the set.
const memoryChunk = 256

func newMemoryBackend() *memoryBackend {
	b := &memoryBackend{}
	b.mu.events = make(map[events.ID]memoryEvent)
	return b
}

// valueOf returns the value under which index i files v.
func valueOf(i Index, v string) (indexValue, error) {
	switch i {
	case ByCorrelation:
		t, err := events.ParseTraceID(v)
		return indexValue(t), err
	case ByNode, ByKind:
		return digestValue(v), nil
	}
	return indexValue{}, fmt.Errorf("crdt: unknown index %v", i)
}

func digestValue(v string) indexValue { return digestIndexValue(digest(v)) }

func digestIndexValue(d uint64) indexValue {
	var out indexValue
	binary.BigEndian.PutUint64(out[:], d)
	return out
}

func (b *memoryBackend) write(_ context.Context, recs []record) error {
	b.mu.Lock()
	for i := range recs {
		r := &recs[i]
		// The event first: a reader that finds an index entry finds the
		// event too.
		id := r.key.ID()
		if _, ok := b.mu.events[id]; ok {
			// Stored already, by a writer that may not have indexed it
			// yet: this record may be the one reported new.
			r.own()
			continue
		}
		ev := memoryEvent{time: [hlc.EncodedLen]byte(r.key[:hlc.EncodedLen])}
		ev.slab, ev.off, ev.len = b.storeLocked(r)
		b.mu.events[id] = ev
		b.mu.byNode.insert(digestIndexValue(r.node), r.key)
		b.mu.byKind.insert(digestIndexValue(r.kind), r.key)
	}
	b.mu.Unlock()
	// Every record goes to its trace's list, which holds a key once: a
	// record stored already is there, or will be once the writer that
	// stored it gets there.
	for i := range recs {
		if trace := recs[i].trace; !trace.IsZero() {
			shard := b.traceShard(trace)
			shard.Lock()
			shard.insert(indexValue(trace), recs[i].key)
			shard.Unlock()
		}
	}
	return nil
}

// traceShard returns the shard of the index by correlation that holds
// trace's list.
func (b *memoryBackend) traceShard(trace events.TraceID) *traceShard {
	return &b.traces[trace[len(trace)-1]%traceShards]
}

// storeLocked copies r's encoding into the slabs, points r's event at the
// copy, which never changes and is the one watches keep, and returns where
// it went.
//
// REQUIRES: b.mu (write)
func (b *memoryBackend) storeLocked(r *record) (slab, off, length uint32) {
	size := len(r.x.Wire())
	n := len(b.mu.slabs)
	if n == 0 || len(b.mu.slabs[n-1])+size > cap(b.mu.slabs[n-1]) {
		b.mu.slabs = append(b.mu.slabs, make([]byte, 0, max(slabSize, size)))
		b.mu.live = append(b.mu.live, 0)
		n++
	}
	s := &b.mu.slabs[n-1]
	at := len(*s)
	*s = r.x.MoveTo(*s)
	r.shared = false
	b.mu.live[n-1]++
	return uint32(n - 1), uint32(at), uint32(size)
}

func (b *memoryBackend) event(_ context.Context, k Key) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ev, ok := b.mu.events[k.ID()]
	if !ok || ev.time != [hlc.EncodedLen]byte(k[:hlc.EncodedLen]) {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, k.ID())
	}
	// Later writes append past these bytes and never change them, so the
	// caller may read them after the lock is released.
	end := ev.off + ev.len
	return b.mu.slabs[ev.slab][ev.off:end:end], nil
}

func (b *memoryBackend) keyOf(_ context.Context, id events.ID) (Key, error) {
	b.mu.RLock()
	ev, ok := b.mu.events[id]
	b.mu.RUnlock()
	if !ok {
		return Key{}, fmt.Errorf("%w: %v", ErrNotFound, id)
	}
	return Key(append(ev.time[:], id[:]...)), nil
}

// lists returns the lists of index i that hold value v's, and the lock
// that guards them.
func (b *memoryBackend) lists(i Index, v indexValue) (*valueLists, *sync.RWMutex) {
	switch i {
	case ByNode:
		return &b.mu.byNode, &b.mu.RWMutex
	case ByKind:
		return &b.mu.byKind, &b.mu.RWMutex
	}
	shard := b.traceShard(events.TraceID(v))
	return &shard.valueLists, &shard.RWMutex
}

// list starts at r's start (or end) and reads the index a chunk at a time.
func (b *memoryBackend) list(ctx context.Context, i Index, value string, r Range, descending bool, fn func(Key) bool) error {
	v, err := valueOf(i, value)
	if err != nil {
		return err
	}
	from, before := r.From, r.To
	chunk := make([]Key, 0, memoryChunk)
	for {
		chunk = chunk[:0]
		collect := func(k Key) bool {
			chunk = append(chunk, k)
			return len(chunk) < memoryChunk
		}
		lists, mu := b.lists(i, v)
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
		if len(chunk) < memoryChunk {
			return ctx.Err()
		}
		last := chunk[len(chunk)-1]
		if descending {
			before = last
		} else if from = last.Successor(); from == MaxKey {
			return ctx.Err()
		}
	}
}

// expire drops the events below before from the node and kind lists, which
// count them by digest, the event table and the slabs, then from their
// traces' lists, whose traces it reads from the events.
func (b *memoryBackend) expire(_ context.Context, before Key) (expiry, error) {
	gone := newExpiry()
	traces := make(map[events.TraceID]struct{})
	var bad error
	b.mu.Lock()
	dropLists(b.mu.byNode, before, gone.nodes, func(k Key) {
		ev, ok := b.mu.events[k.ID()]
		if !ok {
			return
		}
		delete(b.mu.events, k.ID())
		b.mu.dropped++
		if e, err := storedLimits.UnmarshalHeader(b.mu.slabs[ev.slab][ev.off : ev.off+ev.len]); err != nil {
			bad = fmt.Errorf("%w: event %v: %v", ErrCorrupt, k.ID(), err)
		} else if !e.Correlation.IsZero() {
			traces[e.Correlation] = struct{}{}
		}
		if b.mu.live[ev.slab]--; b.mu.live[ev.slab] == 0 && int(ev.slab) < len(b.mu.slabs)-1 {
			b.mu.slabs[ev.slab] = nil
		}
		gone.n++
	})
	dropLists(b.mu.byKind, before, gone.kinds, func(Key) {})
	if b.mu.dropped > len(b.mu.events) {
		fresh := make(map[events.ID]memoryEvent, len(b.mu.events))
		maps.Copy(fresh, b.mu.events)
		b.mu.events = fresh
		b.mu.dropped = 0
	}
	b.mu.Unlock()
	for t := range traces {
		shard := b.traceShard(t)
		shard.Lock()
		if l := shard.valueLists[indexValue(t)]; l != nil {
			if l.dropBelow(before, func(Key) {}); l.empty() {
				delete(shard.valueLists, indexValue(t))
			}
		}
		shard.Unlock()
	}
	return gone, bad
}

// dropLists drops the keys below before from lists, calling fn with each,
// counts them by the digest the list's value holds, into counts if it is
// not nil, and forgets the lists left empty.
func dropLists(lists valueLists, before Key, counts map[uint64]int, fn func(Key)) {
	for v, l := range lists {
		n := l.dropBelow(before, fn)
		if counts != nil && n > 0 {
			counts[binary.BigEndian.Uint64(v[:8])] += n
		}
		if l.empty() {
			delete(lists, v)
		}
	}
}

func (b *memoryBackend) saveHorizon(context.Context, Key) error { return nil }

// bytes adds up the slabs in use, the event table and the keys of the
// index lists.
func (b *memoryBackend) bytes(context.Context) (total, reclaimable int64, err error) {
	b.mu.RLock()
	n := int64(len(b.mu.events)+b.mu.dropped) * eventEntryBytes
	for _, s := range b.mu.slabs {
		n += int64(cap(s))
	}
	for _, lists := range []*valueLists{&b.mu.byNode, &b.mu.byKind} {
		for _, l := range *lists {
			n += l.bytes()
		}
	}
	b.mu.RUnlock()
	for i := range b.traces {
		shard := &b.traces[i]
		shard.RLock()
		for _, l := range shard.valueLists {
			n += l.bytes()
		}
		shard.RUnlock()
	}
	return n, 0, nil
}
