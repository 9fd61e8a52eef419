package crdt

import (
	"hash/maphash"
	"math/bits"

	"github.com/scopemesh/scopemesh/events"
)

// idTable finds entries of type E by event ID. It is a hash table with
// open addressing and linear probing over 8-byte slots, beside an
// append-only list of entries. A Go map keyed by the 32-byte ID costs
// 32 bytes a slot before the entry and moves every slot each time it
// grows. Here a slot is an entry's place in the list with a 32-bit tag of
// its ID beside it, which picks the slot too: a probe rarely reads an entry
// that is not the one sought, a lookup mostly costs one cache miss, and
// the table grows by reading its slots alone. Entries never move.
//
// The tag is a hash of the whole ID under a seed of the table's own, so
// that nobody can grind IDs to share one: IDs are the hashes of content a
// member chooses, and a run of IDs with one tag would make every probe of
// it walk them all. Tags that are equal by chance are told apart by the
// caller's match, so they cost a probe, never a wrong answer.
//
// The slots are split into idTableParts parts by the tag's top bits, each
// growing on its own: a growth pauses the table's users for a part's
// rehash, 1/idTableParts of the whole, where one table of millions of
// slots would stop them for hundreds of milliseconds.
//
// An idTable is not safe for concurrent use.
type idTable[E any] struct {
	parts   [idTableParts]idTablePart
	seed    maphash.Seed
	entries [][]E  // chunks of entryChunk
	n       uint32 // entries in use
}

// idTablePart is one part of an idTable's slots.
type idTablePart struct {
	// slots holds, for each entry, tag<<32 | (place+1); 0 is an empty
	// slot. Its length is a power of two, at least twice n.
	slots []uint64
	shift uint // 64 - log2(len(slots)): a hash's top bits pick a slot
	n     uint32
}

// idTableParts is the number of parts of an idTable, picked by the top
// bits of a tag.
const (
	idTablePartBits = 7
	idTableParts    = 1 << idTablePartBits
)

// entryChunk is the number of entries in a chunk of the list.
const entryChunk = 1 << 12

// initialPartSlots is the size of an empty part's slots.
const initialPartSlots = 8

func newIDTable[E any]() idTable[E] {
	t := idTable[E]{seed: maphash.MakeSeed()}
	for i := range t.parts {
		t.parts[i] = idTablePart{
			slots: make([]uint64, initialPartSlots),
			shift: uint(64 - bits.TrailingZeros(initialPartSlots)),
		}
	}
	return t
}

// tagOf returns the tag of id.
func (t *idTable[E]) tagOf(id events.ID) uint64 {
	return maphash.Bytes(t.seed, id[:]) >> 32
}

func (t *idTable[E]) partOf(tag uint64) *idTablePart { return &t.parts[tag>>(32-idTablePartBits)] }

// home returns the first slot of p a tag probes: Fibonacci hashing, whose
// top bits mix in every bit of the tag.
func (p *idTablePart) home(tag uint64) uint64 { return (tag * 0x9e3779b97f4a7c15) >> p.shift }

// find calls match with the entries filed under id's tag, in probe order,
// until it returns true, and returns that entry. Otherwise it returns nil
// and the empty slot where an entry for id goes.
func (t *idTable[E]) find(id events.ID, match func(*E) bool) (e *E, free uint64) {
	tag := t.tagOf(id)
	p := t.partOf(tag)
	mask := uint64(len(p.slots) - 1)
	for i := p.home(tag); ; i = (i + 1) & mask {
		s := p.slots[i]
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
	tag := t.tagOf(id)
	p := t.partOf(tag)
	p.slots[free] = tag<<32 | uint64(place+1)
	p.n++
	if 2*uint64(p.n) > uint64(len(p.slots)) {
		p.grow()
	}
	return t.entry(place)
}

// grow doubles p's slots and files its entries again.
func (p *idTablePart) grow() {
	old := p.slots
	p.slots = make([]uint64, 2*len(old))
	// Memory fresh from the kernel is mapped on first touch. Probing the
	// new slots below reads before it writes, and a page first read maps
	// the shared zero page, which the write then replaces: a second fault
	// and a flush of every core's TLB. Writing the slots first takes one
	// fault a page. The flushes were 5 % of the CPU of replicating to 3
	// nodes (`perf record -g go run ./bench replicate -rate 0 -writers
	// one -events 400000`, under do_wp_page).
	clear(p.slots)
	p.shift--
	mask := uint64(len(p.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := p.home(s >> 32)
		for p.slots[i] != 0 {
			i = (i + 1) & mask
		}
		p.slots[i] = s
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
	e, _ := t.find(id, hasID(id))
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
	e, free := t.find(id, hasID(id))
	if e != nil {
		return nil
	}
	e = t.insert(free, id)
	e.key = k
	return e
}

// hasID returns the match for find of the entry of the event with ID id.
func hasID(id events.ID) func(*memoryEvent) bool {
	return func(e *memoryEvent) bool { return e.key.ID() == id }
}
