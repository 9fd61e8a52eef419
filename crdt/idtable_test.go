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
		ev := tab.add(key(i), 1)
		if ev == nil {
			t.Fatalf("add of ID %d refused", i)
		}
		ev.off = uint32(i)
		if tab.add(key(i), 1) != nil {
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

// TestEventTableMovesRecentEntries adds the events of two origins to a
// table whose recent table moves on every few adds: one origin's in time
// order, except every tenth, which is older than most before it, the
// other's far behind the first's in time. With each add it adds again an
// event of each origin added a while ago, moved to the main table by now,
// mostly. It checks that each event is filed once and found wherever it
// went.
func TestEventTableMovesRecentEntries(t *testing.T) {
	tab := newEventTable()
	tab.recentEntries = 7
	const n = 1000
	key := func(i int) (Key, uint64) {
		var id events.ID
		id[0], id[1], id[31] = byte(i), byte(i>>8), 1
		origin := uint64(i % 2)
		wall := 1000 + i
		switch {
		case origin == 1:
			wall = i // behind all of origin 0's
		case i%10 == 0:
			wall = 1000 + i/2
		}
		return MakeKey(hlc.Timestamp{Wall: int64(wall)}, id), origin
	}
	add := func(i int) bool {
		k, origin := key(i)
		ev := tab.add(k, origin)
		if ev != nil {
			ev.off = uint32(i)
		}
		return ev != nil
	}
	for i := range n {
		if !add(i) {
			t.Fatalf("add of event %d refused", i)
		}
		for _, j := range []int{i / 2 &^ 1, i/2 | 1} {
			if j < i && add(j) {
				t.Fatalf("event %d added again after %d more", j, i-j)
			}
		}
	}
	if tab.n != n {
		t.Fatalf("%d entries for %d events", tab.n, n)
	}
	for i := range n {
		k, _ := key(i)
		ev, ok := tab.get(k.ID())
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
	b := newDatastoreBackend(ds, DefaultTraceBucket)
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
