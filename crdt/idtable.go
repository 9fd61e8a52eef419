package crdt

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"unsafe"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
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
// New entries go to a table of recent ones, small enough to stay in the
// processor's cache. Once it holds recentEntries, it becomes the previous
// table, and the previous one's entries move to the main table in bulk,
// filed in the order of their slots there, so that the move sweeps the
// main table's memory once rather than missing the cache and the TLB for
// each entry: those misses, one per event added, were 6 % of the CPU of
// replicating to 3 nodes (`perf record -g go run ./bench replicate -rate 0
// -writers one -events 400000`). An event later than every event of its
// origin the main table files cannot be there, so adding a new event —
// almost every add is one — looks in the two small tables alone. Times are
// kept per origin because other nodes' events arrive late: under load, the
// merges of 3 nodes all recording ran up to a second behind, and more than
// half their events were older than the latest the main table filed.
//
// The main table's slots are split into idTableParts parts by the top bits
// of a tag's hash, each growing on its own: a growth pauses the table's
// users for a part's rehash, 1/idTableParts of the whole, where one table
// of millions of slots would stop them for hundreds of milliseconds.
//
// An idTable is not safe for concurrent use.
type idTable[E any] struct {
	recent, previous idSlots
	parts            [idTableParts]idSlots
	recentEntries    uint32 // recentEntries, a field so that tests can lower it
	origins          originTimes
	seed             maphash.Seed
	entries          [][]E  // chunks of entryChunk
	n                uint32 // entries in use
}

// idSlots is a table of slots: a small table, or a part of the main one.
type idSlots struct {
	// slots holds, for each entry, tag<<32 | (place+1); 0 is an empty
	// slot. Its length is a power of two, at least twice n.
	slots []uint64
	shift uint // 64 - log2(len(slots)): a hash's top bits pick a slot
	// skip is how many top bits of a hash pick the part, none in a small
	// table; the bits after them pick the slot.
	skip uint
	n    uint32
}

// idTableParts is the number of parts of the main table.
const (
	idTablePartBits = 7
	idTableParts    = 1 << idTablePartBits
)

// recentEntries is how many entries the recent table holds before it
// moves on: its slots then take 64 KiB. Of 2^10 to 2^15,
// 2^12 decoded and merged events fastest (`go test -run '^$' -bench
// Receive/in-place ./crdt`, 300,000 events), and added them fastest
// (`-bench Add/memory -benchtime 1000000x`): 2,340 ns an add, against
// 2,440 with 2^15 and 2,670 with no recent table.
const recentEntries = 1 << 12

// entryChunk is the number of entries in a chunk of the list.
const entryChunk = 1 << 12

// initialSlots is the size of an empty table's slots.
const initialSlots = 8

func newIDTable[E any]() idTable[E] {
	t := idTable[E]{seed: maphash.MakeSeed(), recent: newIDSlots(0), previous: newIDSlots(0), recentEntries: recentEntries}
	for i := range t.parts {
		t.parts[i] = newIDSlots(idTablePartBits)
	}
	return t
}

func newIDSlots(skip uint) idSlots {
	return idSlots{slots: make([]uint64, initialSlots), shift: uint(64 - bits.TrailingZeros(initialSlots)), skip: skip}
}

// tagOf returns the tag of id.
func (t *idTable[E]) tagOf(id events.ID) uint64 {
	return maphash.Bytes(t.seed, id[:]) >> 32
}

// hashOf returns the hash of a tag that places it: Fibonacci hashing,
// whose top bits mix in every bit of the tag. The main table's part and
// slot, and a small table's slot, come from its top bits in turn, so that
// a small table's slots, read in order, are in the order of the main
// table's.
func hashOf(tag uint64) uint64 { return tag * 0x9e3779b97f4a7c15 }

func (t *idTable[E]) partOf(tag uint64) *idSlots {
	return &t.parts[hashOf(tag)>>(64-idTablePartBits)]
}

// home returns the first slot of s a tag probes.
func (s *idSlots) home(tag uint64) uint64 { return hashOf(tag) << s.skip >> s.shift }

// scan calls match with the entries s files under tag, in probe order,
// until it returns true, and returns that entry. Otherwise it returns nil
// and the empty slot where an entry for tag goes.
func (t *idTable[E]) scan(s *idSlots, tag uint64, match func(*E) bool) (e *E, free uint64) {
	mask := uint64(len(s.slots) - 1)
	for i := s.home(tag); ; i = (i + 1) & mask {
		slot := s.slots[i]
		if slot == 0 {
			return nil, i
		}
		if slot>>32 == tag {
			if e := t.entry(uint32(slot) - 1); match(e) {
				return e, 0
			}
		}
	}
}

// find calls match with the entries filed under id's tag, recent ones
// first, until it returns true, and returns that entry, or nil.
func (t *idTable[E]) find(id events.ID, match func(*E) bool) *E {
	tag := t.tagOf(id)
	for _, s := range [...]*idSlots{&t.recent, &t.previous, t.partOf(tag)} {
		if e, _ := t.scan(s, tag, match); e != nil {
			return e
		}
	}
	return nil
}

// add returns the entry match finds for id, whose key's time is at and
// whose origin node has digest origin (or 0 if unknown), and false; if
// there is none, it files a new entry for id and returns it for the caller
// to fill in, and true.
func (t *idTable[E]) add(id events.ID, at [hlc.EncodedLen]byte, origin uint64, match func(*E) bool) (*E, bool) {
	tag := t.tagOf(id)
	e, free := t.scan(&t.recent, tag, match)
	if e != nil {
		return e, false
	}
	if e, _ := t.scan(&t.previous, tag, match); e != nil {
		return e, false
	}
	times := t.origins.of(origin)
	if bytes.Compare(at[:], times.main[:]) <= 0 {
		if e, _ := t.scan(t.partOf(tag), tag, match); e != nil {
			return e, false
		}
	}
	if t.n%entryChunk == 0 {
		t.entries = append(t.entries, make([]E, entryChunk))
	}
	place := t.n
	t.n++
	t.recent.put(free, tag<<32|uint64(place+1))
	if bytes.Compare(at[:], times.recent[:]) > 0 {
		times.recent = at
	}
	if t.recent.n >= t.recentEntries {
		t.moveOn()
	}
	return t.entry(place), true
}

// moveOn files the previous table's entries in the main table, in the
// order of its slots, and makes the recent table the previous one and the
// emptied previous one the recent one.
func (t *idTable[E]) moveOn() {
	for _, slot := range t.previous.slots {
		if slot != 0 {
			t.partOf(slot >> 32).file(slot)
		}
	}
	clear(t.previous.slots)
	t.previous.n = 0
	t.recent, t.previous = t.previous, t.recent
	t.origins.moveOn()
}

// originTimes holds, for each origin of the events an idTable files, the
// latest key times its tables file of that origin's events. Adds come in
// runs of one origin's events.
type originTimes struct{ runMap[uint64, latestTimes] }

// latestTimes are the latest key times an idTable's tables file of an
// origin's events, all zeros for none.
type latestTimes struct{ recent, previous, main [hlc.EncodedLen]byte }

// moveOn moves the times on as idTable.moveOn moves the tables: the
// previous table's entries to the main table, the recent table's to the
// previous.
func (o *originTimes) moveOn() {
	for _, times := range o.entries {
		if bytes.Compare(times.previous[:], times.main[:]) > 0 {
			times.main = times.previous
		}
		times.previous, times.recent = times.recent, [hlc.EncodedLen]byte{}
	}
}

// put fills slot i, an empty one, with slot.
func (s *idSlots) put(i uint64, slot uint64) {
	s.slots[i] = slot
	s.n++
	if 2*uint64(s.n) > uint64(len(s.slots)) {
		s.grow()
	}
}

// file puts slot in the first empty slot from its home on.
func (s *idSlots) file(slot uint64) {
	mask := uint64(len(s.slots) - 1)
	i := s.home(slot >> 32)
	for s.slots[i] != 0 {
		i = (i + 1) & mask
	}
	s.put(i, slot)
}

// grow doubles s's slots and files its entries again.
func (s *idSlots) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	// Memory fresh from the kernel is mapped on first touch. Probing the
	// new slots below reads before it writes, and a page first read maps
	// the shared zero page, which the write then replaces: a second fault
	// and a flush of every core's TLB. Writing the slots first takes one
	// fault a page. The flushes were 5 % of the CPU of replicating to 3
	// nodes (`perf record -g go run ./bench replicate -rate 0 -writers
	// one -events 400000`, under do_wp_page).
	clear(s.slots)
	s.shift--
	s.n = 0
	for _, slot := range old {
		if slot != 0 {
			s.file(slot)
		}
	}
}

// compact files, afresh in the main table, the entries id reports live
// and drops the others, moving entries. Every origin's entries are taken
// to be in the main table from then on: the table stays correct, if a
// little slower for the events of the next moments.
func (t *idTable[E]) compact(id func(*E) (events.ID, bool)) {
	t.moveOn()
	t.moveOn()
	old, n := t.entries, t.n
	t.entries, t.n = nil, 0
	for i := range t.parts {
		t.parts[i] = newIDSlots(idTablePartBits)
	}
	for place := range n {
		e := &old[place/entryChunk][place%entryChunk]
		eid, live := id(e)
		if !live {
			continue
		}
		if t.n%entryChunk == 0 {
			t.entries = append(t.entries, make([]E, entryChunk))
		}
		*t.entry(t.n) = *e
		tag := t.tagOf(eid)
		t.partOf(tag).file(tag<<32 | uint64(t.n+1))
		t.n++
	}
}

// bytes returns roughly how many bytes the table holds, with entries of
// entrySize bytes.
func (t *idTable[E]) bytes(entrySize int64) int64 {
	n := int64(len(t.entries)*entryChunk) * entrySize
	for _, s := range append([]*idSlots{&t.recent, &t.previous}, t.partsList()...) {
		n += int64(len(s.slots)) * 8
	}
	return n
}

func (t *idTable[E]) partsList() []*idSlots {
	out := make([]*idSlots, len(t.parts))
	for i := range t.parts {
		out[i] = &t.parts[i]
	}
	return out
}

func (t *idTable[E]) entry(place uint32) *E {
	return &t.entries[place/entryChunk][place%entryChunk]
}

// eventTable finds a memory set's events by ID.
type eventTable struct {
	idTable[memoryEvent]
	dead uint32 // entries of expired events, with a zero key
}

func newEventTable() eventTable { return eventTable{idTable: newIDTable[memoryEvent]()} }

// get returns the entry of the event with ID id.
func (t *eventTable) get(id events.ID) (memoryEvent, bool) {
	e := t.find(id, hasID(id))
	if e == nil {
		return memoryEvent{}, false
	}
	return *e, true
}

// add adds an entry for the event with key k, whose origin node has digest
// origin, and returns it for the caller to fill in, unless the table holds
// an event with k's ID: then it returns nil and changes nothing.
func (t *eventTable) add(k Key, origin uint64) *memoryEvent {
	id := k.ID()
	e, added := t.idTable.add(id, [hlc.EncodedLen]byte(k[:hlc.EncodedLen]), origin, hasID(id))
	if !added {
		return nil
	}
	e.key = k
	return e
}

// drop marks the entry of the event with ID id dead, so that no lookup
// finds it, and returns what it held; nil if there is none.
func (t *eventTable) drop(id events.ID) *memoryEvent {
	e := t.find(id, hasID(id))
	if e == nil {
		return nil
	}
	held := *e
	e.key = Key{}
	t.dead++
	return &held
}

// compact refiles the live entries afresh, without the dead ones, once
// these are as many: entries never move otherwise, and expired events
// would keep their entries and slots for good.
func (t *eventTable) compact() {
	if t.dead <= entryChunk || 2*t.dead < t.n {
		return
	}
	live := func(e *memoryEvent) (events.ID, bool) { return e.key.ID(), e.key != Key{} }
	t.idTable.compact(live)
	t.dead = 0
}

// bytes returns roughly how many bytes the table holds.
func (t *eventTable) bytes() int64 {
	return t.idTable.bytes(int64(unsafe.Sizeof(memoryEvent{})))
}

// hasID returns the match for find of the entry of the event with ID id.
func hasID(id events.ID) func(*memoryEvent) bool {
	return func(e *memoryEvent) bool { return e.key.ID() == id }
}
