package crdt

import (
	"context"
	"errors"
	"testing"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// TestEventTable fills a table with IDs, many of which share bytes, as a
// member grinding IDs could make them, and enough that some share a tag by
// chance, and checks, as its parts grow, that every ID finds its own
// entry, that a second add of an ID changes nothing, and that an absent ID
// is not found.
func TestEventTable(t *testing.T) {
	tab := newEventTable()
	key := func(i int) Key {
		var id events.ID
		id[8], id[9], id[10] = byte(i), byte(i>>8), byte(i>>16)
		id[31] = 1
		return MakeKey(hlc.Timestamp{Wall: 1}, id)
	}
	const n = 200_000 // about 200,000²/2³³ ≈ 4.7 pairs of equal tags
	for i := range n {
		ev := tab.add(key(i))
		if ev == nil {
			t.Fatalf("add of ID %d refused", i)
		}
		ev.off = uint32(i)
		if tab.add(key(i)) != nil {
			t.Fatalf("a second add of ID %d accepted", i)
		}
	}
	for i := range n {
		ev, ok := tab.get(key(i).ID())
		if !ok || ev.key != key(i) || ev.off != uint32(i) {
			t.Fatalf("ID %d: got %v, %v", i, ev.off, ok)
		}
	}
	if _, ok := tab.get(key(n).ID()); ok {
		t.Fatal("an ID never added was found")
	}
	slots, filed := 0, 0
	for _, p := range append(tab.parts[:], tab.recent, tab.previous) {
		slots += len(p.slots)
		filed += int(p.n)
		if 2*int(p.n) > len(p.slots) {
			t.Fatalf("a table holds %d entries in %d slots", p.n, len(p.slots))
		}
	}
	if int(tab.n) != n || filed != n || slots < 2*n {
		t.Fatalf("%d entries, %d filed in %d slots, want %d in at least twice as many", tab.n, filed, slots, n)
	}
}

// TestEventTableMovesRecentEntries adds events to a table whose recent
// table moves its entries on every few adds, in time order and then some
// again, and some older than those moved, and checks that each is filed
// once and found wherever it went.
func TestEventTableMovesRecentEntries(t *testing.T) {
	tab := newEventTable()
	tab.recentEntries = 7
	key := func(i, wall int) Key {
		var id events.ID
		id[0], id[1], id[31] = byte(i), byte(i>>8), 1
		return MakeKey(hlc.Timestamp{Wall: int64(wall)}, id)
	}
	const n = 1000
	added := func(k Key) bool {
		ev := tab.add(k)
		if ev != nil {
			ev.off = uint32(k.ID()[0]) | uint32(k.ID()[1])<<8
		}
		return ev != nil
	}
	for i := range n {
		// Every tenth event is older than most of those before it.
		wall := 1000 + i
		if i%10 == 0 {
			wall = 1000 + i/2
		}
		if !added(key(i, wall)) {
			t.Fatalf("add of event %d refused", i)
		}
		// Add again one added a while ago: moved by now, mostly.
		j := i / 2
		wallJ := 1000 + j
		if j%10 == 0 {
			wallJ = 1000 + j/2
		}
		if added(key(j, wallJ)) {
			t.Fatalf("event %d added again after %d more", j, i-j)
		}
	}
	if tab.n != n {
		t.Fatalf("%d entries for %d events", tab.n, n)
	}
	for i := range n {
		ev, ok := tab.get(key(i, 0).ID())
		if !ok || ev.off != uint32(i) {
			t.Fatalf("event %d: got %v, %v", i, ev.off, ok)
		}
	}
}

// TestDatastoreIDCollisions files one ID under many times, twice, only
// some of them stored, and checks that each is filed once and that a
// datastore set finds the key of the stored one: every time is a
// candidate under the ID's tag, and the datastore tells them apart.
func TestDatastoreIDCollisions(t *testing.T) {
	ctx := context.Background()
	ds := newMapStore()
	b := newDatastoreBackend(ds)
	var id events.ID
	id[0], id[31] = 7, 1
	key := func(i int) Key { return MakeKey(hlc.Timestamp{Wall: int64(1000 + i)}, id) }
	const n = 600
	for range 2 { // the second time, as when two commits of one event race
		b.fileIDs(func(yield func(Key) bool) {
			for i := range n {
				if !yield(key(i)) {
					return
				}
			}
		})
	}
	if b.ids.t.n != n {
		t.Fatalf("%d IDs filed, want %d", b.ids.t.n, n)
	}
	if _, err := b.keyOf(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("keyOf with no time stored = %v; want ErrNotFound", err)
	}
	const stored = 377
	if err := ds.Put(ctx, eventKey(key(stored)), []byte{1}); err != nil {
		t.Fatal(err)
	}
	if k, err := b.keyOf(ctx, id); err != nil || k != key(stored) {
		t.Fatalf("keyOf = %v, %v; want %v", k, err, key(stored))
	}
}
