package crdt

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/scopemesh/scopemesh/events"
)

// idTable finds entries of type E by event ID. It is a hash table with
// open addressing and linear probing over 8-byte slots, beside an
// append-only list of entries. A Go map keyed by the 32-byte ID costs
// 32 bytes a slot before the entry, hashes a key that is already a SHA-256
// digest, and moves every slot each time it grows. Here a slot is an
// entry's place in the list with 32 bits of its ID beside it, which pick
// the slot too: a probe rarely reads an entry that is not the one sought,
// a lookup mostly costs one cache miss, and the table grows by reading its
// slots alone. Entries never move.
//
// Slots are chosen by a seeded hash of those 32 bits: someone who grinds
// IDs to share them cannot aim them at one run of slots without knowing
// the seed. IDs with equal bits probe the same run and are told apart by
// the caller's match, so a collision costs a probe, never a wrong answer.
//
// An idTable is not safe for concurrent use.
type idTable[E any] struct {
	// slots holds, for each entry, tag<<32 | (place+1), where tag is
	// bytes 4–7 of its ID read little-endian; 0 is an empty slot. Its
	// length is a power of two, at least twice the number of entries.
	slots   []uint64
	shift   uint   // 64 - log2(len(slots)): a hash's top bits pick a slot
	seed    uint64 // odd
	entries [][]E  // chunks of entryChunk
	n       uint32 // entries in use
}

// entryChunk is the number of entries in a chunk of the list.
const entryChunk = 1 << 12

// initialSlots is the size of an empty table's slots.
const initialSlots = 1 << 10

func newIDTable[E any]() idTable[E] {
	return idTable[E]{
		slots: make([]uint64, initialSlots),
		shift: uint(64 - bits.TrailingZeros(initialSlots)),
		seed:  rand.Uint64() | 1,
	}
}

// tagOf returns the 32 bits of id a slot keeps.
func tagOf(id events.ID) uint64 { return uint64(binary.LittleEndian.Uint32(id[4:8])) }

// home returns the first slot a tag probes: Fibonacci hashing of the
// seeded tag, whose top bits mix in every bit of it.
func (t *idTable[E]) home(tag uint64) uint64 { return ((tag ^ t.seed) * 0x9e3779b97f4a7c15) >> t.shift }

// find calls match with the entries filed under id's tag, in probe order,
// until it returns true, and returns that entry. Otherwise it returns nil
// and the empty slot where an entry for id goes.
func (t *idTable[E]) find(id events.ID, match func(*E) bool) (e *E, free uint64) {
	tag := tagOf(id)
	mask := uint64(len(t.slots) - 1)
	for i := t.home(tag); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return nil, i
		}
		if s>>32 == tag {
			if e := t.entry(uint32(s) - 1); match(e) {
				return e, 0
			}
		}
	}
}

// insert files a new entry for id in free, the slot find returned, and
// returns the entry for the caller to fill in. No call may change the
// table between the two.
func (t *idTable[E]) insert(free uint64, id events.ID) *E {
	if t.n%entryChunk == 0 {
		t.entries = append(t.entries, make([]E, entryChunk))
	}
	place := t.n
	t.n++
	t.slots[free] = tagOf(id)<<32 | uint64(place+1)
	if 2*uint64(t.n) > uint64(len(t.slots)) {
		t.grow()
	}
	return t.entry(place)
}

// grow doubles the slots and files every entry again.
func (t *idTable[E]) grow() {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	t.shift--
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := t.home(s >> 32)
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

func (t *idTable[E]) entry(place uint32) *E {
	return &t.entries[place/entryChunk][place%entryChunk]
}

// eventTable finds a memory set's events by ID.
type eventTable struct{ idTable[memoryEvent] }

func newEventTable() eventTable { return eventTable{newIDTable[memoryEvent]()} }

// get returns the entry of the event with ID id.
func (t *eventTable) get(id events.ID) (memoryEvent, bool) {
	e, _ := t.find(id, func(e *memoryEvent) bool { return e.key.ID() == id })
	if e == nil {
		return memoryEvent{}, false
	}
	return *e, true
}

// add adds an entry for the event with key k and returns it for the
// caller to fill in, unless the table holds an event with k's ID: then it
// returns nil and changes nothing.
func (t *eventTable) add(k Key) *memoryEvent {
	id := k.ID()
	e, free := t.find(id, func(e *memoryEvent) bool { return e.key.ID() == id })
	if e != nil {
		return nil
	}
	e = t.insert(free, id)
	e.key = k
	return e
}
