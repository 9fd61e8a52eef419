package memset

import (
	"testing"

	"github.com/scopemesh/scopemesh/events"
)

// TestIDTable fills a table with IDs, many of which share bytes, as a
// member grinding IDs could make them, and enough that some share a tag by
// chance, and checks that every ID finds its own entry, that a second add
// of an ID changes nothing, that an absent ID is not found, and that
// dropped entries are gone, before and after the table compacts.
func TestIDTable(t *testing.T) {
	tab := newIDTable()
	key := func(i int) Key {
		var k Key
		k[0] = 1
		id := k[12:]
		id[8], id[9], id[10] = byte(i), byte(i>>8), byte(i>>16)
		id[31] = 1
		return k
	}
	const n = 200_000 // about 200,000²/2³³ ≈ 4.7 pairs of equal tags
	for i := range n {
		loc := tab.add(key(i))
		if loc == nil {
			t.Fatalf("add of ID %d refused", i)
		}
		loc.off = uint32(i)
	}
	for i := range n {
		if tab.add(key(i)) != nil {
			t.Fatalf("second add of ID %d accepted", i)
		}
	}
	if _, ok := tab.get(events.ID{2}); ok {
		t.Fatal("an absent ID found")
	}
	check := func(from int) {
		t.Helper()
		if tab.len() != n-from {
			t.Fatalf("len = %d, want %d", tab.len(), n-from)
		}
		for i := range n {
			loc, ok := tab.get(key(i).ID())
			if ok != (i >= from) || ok && (loc.off != uint32(i) || loc.key != key(i)) {
				t.Fatalf("ID %d: got %v, %v", i, loc.off, ok)
			}
		}
	}
	check(0)
	for i := range n / 4 {
		if _, ok := tab.drop(key(i).ID()); !ok {
			t.Fatalf("drop of ID %d found nothing", i)
		}
	}
	tab.compact() // a quarter dead: too few to compact
	check(n / 4)
	for i := n / 4; i < 3*n/4; i++ {
		tab.drop(key(i).ID())
	}
	tab.compact()
	if tab.n != n/4 || tab.dead != 0 {
		t.Fatalf("after compacting: %d entries, %d dead; want %d, 0", tab.n, tab.dead, n/4)
	}
	check(3 * n / 4)
}
