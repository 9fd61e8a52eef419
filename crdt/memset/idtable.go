package memset

import (
	"hash/maphash"
	"unsafe"

	"github.com/scopemesh/scopemesh/events"
)

// idTable finds events by ID: a hash table with open addressing and linear
// probing over 8-byte slots, beside an append-only list of entries. It
// takes less CPU per event than a Go map keyed by the 32-byte ID, and its
// entries hold no pointers, so the garbage collector never scans them.
//
// A slot holds a 32-bit tag of an ID, which also picks the slot, and its
// entry's place in the list: a probe rarely reads an entry that is not the
// one sought, and growing reads the slots alone. The tag is a hash under a
// seed of the table's own, so that nobody can grind IDs to share one; tags
// equal by chance cost a probe, never a wrong answer.
//
// An idTable is not safe for concurrent use.
type idTable struct {
	// slots holds, for each entry, tag<<32 | (place+1); 0 is an empty
	// slot. Its length is a power of two, at least twice filled.
	slots  []uint64
	shift  uint // 64 - log2(len(slots)): a hash's top bits pick a slot
	filled uint32
	seed   maphash.Seed
	chunks [][]location // the entries, entryChunk a chunk
	n      uint32       // entries in use
	dead   uint32       // entries of dropped events, with a zero key
}

// location is where an event's encoding lies in the slabs.
type location struct {
	key       Key
	slab, off uint32
	len       uint32
}

// entryChunk is the number of entries in a chunk of the list.
const entryChunk = 1 << 12

// initialSlots is the size of an empty table's slots.
const initialSlots = 8

func newIDTable() idTable {
	return idTable{slots: make([]uint64, initialSlots), shift: 64 - 3, seed: maphash.MakeSeed()}
}

// tagOf returns the tag of id.
func (t *idTable) tagOf(id events.ID) uint64 { return maphash.Bytes(t.seed, id[:]) >> 32 }

// home returns the first slot a tag probes: Fibonacci hashing, whose top
// bits mix in every bit of the tag.
func (t *idTable) home(tag uint64) uint64 { return tag * 0x9e3779b97f4a7c15 >> t.shift }

func (t *idTable) entry(place uint32) *location {
	return &t.chunks[place/entryChunk][place%entryChunk]
}

// scan returns the entry of the event with ID id, or nil and the empty
// slot where an entry for it goes.
func (t *idTable) scan(id events.ID, tag uint64) (*location, uint64) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(tag); ; i = (i + 1) & mask {
		slot := t.slots[i]
		if slot == 0 {
			return nil, i
		}
		if slot>>32 == tag {
			if e := t.entry(uint32(slot) - 1); e.key.ID() == id {
				return e, 0
			}
		}
	}
}

// get returns the entry of the event with ID id, if there is one.
func (t *idTable) get(id events.ID) (location, bool) {
	e, _ := t.scan(id, t.tagOf(id))
	if e == nil {
		return location{}, false
	}
	return *e, true
}

// add returns a new entry for the event with key k, for the caller to fill
// in, unless the table holds an event with k's ID: then it returns nil.
func (t *idTable) add(k Key) *location {
	tag := t.tagOf(k.ID())
	e, free := t.scan(k.ID(), tag)
	if e != nil {
		return nil
	}
	if t.n%entryChunk == 0 {
		t.chunks = append(t.chunks, make([]location, entryChunk))
	}
	place := t.n
	t.n++
	t.put(free, tag<<32|uint64(place+1))
	e = t.entry(place)
	e.key = k
	return e
}

// put fills slot i, an empty one, with slot, and grows the slots once
// they are half full.
func (t *idTable) put(i, slot uint64) {
	t.slots[i] = slot
	if t.filled++; 2*uint64(t.filled) > uint64(len(t.slots)) {
		old := t.slots
		t.slots = make([]uint64, 2*len(old))
		t.shift--
		t.filled = 0
		for _, s := range old {
			if s != 0 {
				t.file(s)
			}
		}
	}
}

// file puts slot in the first empty slot from its home on.
func (t *idTable) file(slot uint64) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(slot >> 32)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.put(i, slot)
}

// drop marks the entry of the event with ID id dead, so that no lookup
// finds it, and returns what it held, and whether there was one.
func (t *idTable) drop(id events.ID) (location, bool) {
	e, _ := t.scan(id, t.tagOf(id))
	if e == nil {
		return location{}, false
	}
	held := *e
	e.key = Key{}
	t.dead++
	return held, true
}

// len returns the number of live entries.
func (t *idTable) len() int { return int(t.n - t.dead) }

// compact files the live entries afresh, without the dead ones, once these
// are many: entries never move otherwise.
func (t *idTable) compact() {
	if t.dead <= entryChunk || 2*t.dead < t.n {
		return
	}
	old := *t
	*t = newIDTable()
	for place := range old.n {
		if e := old.entry(place); e.key != (Key{}) {
			*t.add(e.key) = *e
		}
	}
}

// bytes returns roughly how many bytes the table holds.
func (t *idTable) bytes() int64 {
	return int64(len(t.chunks)*entryChunk)*int64(unsafe.Sizeof(location{})) + int64(len(t.slots))*8
}
