package crdt

import (
	"encoding/binary"

	"github.com/scopemesh/scopemesh/events"
)

// eventTable finds a memory set's events by ID. A Go map keyed by the
// 32-byte ID and holding the memoryEvent costs 88 bytes a slot, and moves
// every slot each time it grows. This table keys a map by the ID's first 8
// bytes and holds a 4-byte place in an append-only list of entries, so its
// slots are 16 bytes and growing moves entries nowhere.
//
// Two IDs may share their first 8 bytes, by chance (once in 2^64 pairs) or
// because someone ground them to: the later one goes into a map keyed by
// the whole ID, so a collision costs a lookup, never a wrong answer.
//
// An eventTable is not safe for concurrent use.
type eventTable struct {
	byPrefix map[uint64]uint32
	byID     map[events.ID]uint32 // IDs whose prefix an earlier ID took
	entries  [][]memoryEvent      // chunks of entryChunk
}

// entryChunk is the number of entries in a chunk of the list: 224 KiB.
const entryChunk = 1 << 12

func newEventTable() eventTable {
	return eventTable{byPrefix: make(map[uint64]uint32), byID: make(map[events.ID]uint32)}
}

func prefixOf(id events.ID) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

func (t *eventTable) at(i uint32) memoryEvent { return *t.entry(i) }

// get returns the entry of the event with ID id.
func (t *eventTable) get(id events.ID) (memoryEvent, bool) {
	i, ok := t.byPrefix[prefixOf(id)]
	if !ok {
		return memoryEvent{}, false
	}
	if ev := t.at(i); ev.key.ID() == id {
		return ev, true
	}
	if i, ok = t.byID[id]; ok {
		return t.at(i), true
	}
	return memoryEvent{}, false
}

// add adds an entry for the event with key k and returns it for the
// caller to fill in, unless the table holds an event with k's ID: then it
// returns nil and changes nothing. The entry stays where it is: chunks are
// never moved.
func (t *eventTable) add(k Key) *memoryEvent {
	id := k.ID()
	p := prefixOf(id)
	i, taken := t.byPrefix[p]
	if !taken {
		i = t.push(memoryEvent{key: k})
		t.byPrefix[p] = i
		return t.entry(i)
	}
	if t.at(i).key.ID() == id {
		return nil
	}
	if _, ok := t.byID[id]; ok {
		return nil
	}
	i = t.push(memoryEvent{key: k})
	t.byID[id] = i
	return t.entry(i)
}

func (t *eventTable) entry(i uint32) *memoryEvent { return &t.entries[i/entryChunk][i%entryChunk] }

// push appends ev to the list and returns its place.
func (t *eventTable) push(ev memoryEvent) uint32 {
	n := len(t.entries)
	if n == 0 || len(t.entries[n-1]) == entryChunk {
		t.entries = append(t.entries, make([]memoryEvent, 0, entryChunk))
		n++
	}
	last := &t.entries[n-1]
	*last = append(*last, ev)
	return uint32((n-1)*entryChunk + len(*last) - 1)
}
