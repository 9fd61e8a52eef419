package crdt

import (
	"context"
	"errors"
	"testing"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// TestEventTablePrefixCollisions fills a table with IDs that share their
// first 8 bytes in groups, as a member grinding IDs could make them, and
// checks, as the table grows, that every ID finds its own entry, that a second add of an ID
// changes nothing, and that an absent ID sharing a prefix is not found.
func TestEventTablePrefixCollisions(t *testing.T) {
	tab := newEventTable()
	key := func(group, member int) Key {
		var id events.ID
		id[0], id[1] = byte(group), byte(group>>8) // the shared prefix
		id[8], id[9] = byte(member), byte(member>>8)
		id[31] = 1
		return MakeKey(hlc.Timestamp{Wall: 1}, id)
	}
	const groups, members = 300, 7
	for m := range members {
		for g := range groups {
			ev := tab.add(key(g, m))
			if ev == nil {
				t.Fatalf("add of group %d member %d refused", g, m)
			}
			ev.off = uint32(g*members + m)
			if tab.add(key(g, m)) != nil {
				t.Fatalf("a second add of group %d member %d accepted", g, m)
			}
		}
	}
	for g := range groups {
		for m := range members {
			ev, ok := tab.get(key(g, m).ID())
			if !ok || ev.key != key(g, m) || ev.off != uint32(g*members+m) {
				t.Fatalf("group %d member %d: got %v, %v", g, m, ev.off, ok)
			}
		}
		if _, ok := tab.get(key(g, members).ID()); ok {
			t.Fatalf("group %d: an ID never added was found", g)
		}
	}
	if int(tab.n) != groups*members || len(tab.slots) < 2*groups*members {
		t.Fatalf("%d entries in %d slots, want %d in at least twice as many", tab.n, len(tab.slots), groups*members)
	}
}

// TestDatastoreIDCollisions files IDs that share the 32 bits the ID table
// keeps, twice, only some of them stored, and checks that each is filed
// once and that a datastore set finds the key of each stored one and none
// of the others.
func TestDatastoreIDCollisions(t *testing.T) {
	ctx := context.Background()
	ds := newMapStore()
	b := newDatastoreBackend(ds)
	key := func(i int) Key {
		var id events.ID
		id[4], id[5], id[6], id[7] = 1, 2, 3, 4 // the shared tag
		id[8], id[9] = byte(i), byte(i>>8)
		return MakeKey(hlc.Timestamp{Wall: int64(1000 + i)}, id)
	}
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
	for i := 0; i < n; i += 3 { // every third is stored
		if err := ds.Put(ctx, eventKey(key(i)), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n + 1 {
		k, err := b.keyOf(ctx, key(i).ID())
		switch {
		case i%3 == 0 && i < n:
			if err != nil || k != key(i) {
				t.Fatalf("keyOf of stored ID %d = %v, %v", i, k, err)
			}
		case !errors.Is(err, ErrNotFound):
			t.Fatalf("keyOf of ID %d, not stored = %v, %v; want ErrNotFound", i, k, err)
		}
	}
}
