package crdt

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/scopemesh/scopemesh/events"
)

// eventTable finds a memory set's events by ID. It is a hash table with
// open addressing and linear probing over 8-byte slots, beside an
// append-only list of entries. A Go map keyed by the 32-byte ID and
// holding the entry costs 88 bytes a slot and moves every slot each time
// it grows; a map from the ID's first 8 bytes to a place in the list costs
// 16 bytes a slot and a hash of the key, though the key is already a
// SHA-256 prefix. Here a slot is the place in the list with 32 bits of the
// ID beside it, which pick the slot too: a probe rarely reads an entry
// that is not the one sought, the table mostly costs one cache miss a
// lookup, and it grows by reading its slots alone.
//
// Slots are chosen by a seeded hash of those 32 bits: someone who grinds
// IDs to share their leading bits cannot aim them at one run of slots
// without knowing the seed. IDs with equal bits probe the same run and are
// told apart by their entries, so a collision costs a probe, never a wrong
// answer.
//
// An eventTable is not safe for concurrent use.
type eventTable struct {
	// slots holds, for each event, tag<<32 | (place+1), where tag is bits
	// 32–63 of the ID's first 8 bytes, read little-endian; 0 is an empty
	// slot. Its length is a power of two, at least twice the number of
	// events.
	slots   []uint64
	shift   uint   // 64 - log2(len(slots)): a hash's top bits pick a slot
	seed    uint64 // odd
	entries [][]memoryEvent // chunks of entryChunk
	n       uint32          // entries in use
}

// entryChunk is the number of entries in a chunk of the list: 224 KiB.
const entryChunk = 1 << 12

// initialSlots is the size of an empty table's slots.
const initialSlots = 1 << 10

func newEventTable() eventTable {
	return eventTable{
		slots: make([]uint64, initialSlots),
		shift: uint(64 - bits.TrailingZeros(initialSlots)),
		seed:  rand.Uint64() | 1,
	}
}

// tagOf returns the 32 bits of id a slot keeps.
func tagOf(id events.ID) uint64 { return uint64(binary.LittleEndian.Uint32(id[4:8])) }

// home returns the first slot a tag probes: Fibonacci hashing of the
// seeded tag, whose top bits mix in every bit of it.
func (t *eventTable) home(tag uint64) uint64 { return ((tag ^ t.seed) * 0x9e3779b97f4a7c15) >> t.shift }

// find returns the slot of id's entry, or the empty slot where it would go.
func (t *eventTable) find(id events.ID) (slot uint64, found bool) {
	tag := tagOf(id)
	mask := uint64(len(t.slots) - 1)
	for i := t.home(tag); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return i, false
		}
		if s>>32 == tag && t.entry(uint32(s)-1).key.ID() == id {
			return i, true
		}
	}
}

// get returns the entry of the event with ID id.
func (t *eventTable) get(id events.ID) (memoryEvent, bool) {
	i, ok := t.find(id)
	if !ok {
		return memoryEvent{}, false
	}
	return *t.entry(uint32(t.slots[i]) - 1), true
}

// add adds an entry for the event with key k and returns it for the
// caller to fill in, unless the table holds an event with k's ID: then it
// returns nil and changes nothing. The entry stays where it is: chunks are
// never moved.
func (t *eventTable) add(k Key) *memoryEvent {
	id := k.ID()
	i, found := t.find(id)
	if found {
		return nil
	}
	place := t.push(memoryEvent{key: k})
	t.slots[i] = tagOf(id)<<32 | uint64(place+1)
	if 2*uint64(t.n) > uint64(len(t.slots)) {
		t.grow()
	}
	return t.entry(place)
}

// grow doubles the slots and places every entry again.
func (t *eventTable) grow() {
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

func (t *eventTable) entry(place uint32) *memoryEvent {
	return &t.entries[place/entryChunk][place%entryChunk]
}

// push appends ev to the list and returns its place.
func (t *eventTable) push(ev memoryEvent) uint32 {
	if t.n%entryChunk == 0 {
		t.entries = append(t.entries, make([]memoryEvent, entryChunk))
	}
	place := t.n
	*t.entry(place) = ev
	t.n++
	return place
}
