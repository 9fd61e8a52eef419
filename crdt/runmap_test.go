package crdt

import (
	"math/rand/v2"
	"testing"
)

// TestValueCountsMatchAMap adds runs of digests, of random lengths and in
// random order, to counts loaded with some, and checks each count against
// a plain map's.
func TestValueCountsMatchAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	loaded := map[uint64]int{1: 5, 2: 1}
	want := map[uint64]int{1: 5, 2: 1}
	c := newValueCounts(loaded)
	for range 1000 {
		d := rng.Uint64N(6)
		for range rng.IntN(4) + 1 {
			c.add(d)
			want[d]++
		}
	}
	for d := range uint64(8) {
		if got := c.get(d); got != want[d] {
			t.Fatalf("count of %d = %d, want %d", d, got, want[d])
		}
	}
	if loaded[1] != 5 {
		t.Fatal("adding changed the map the counts were loaded from")
	}
}
