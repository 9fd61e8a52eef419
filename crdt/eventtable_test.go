package crdt

import (
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
