package memset

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKeyListAgainstModel inserts keys mostly in order, as events arrive,
// and partly at random, with duplicates, and checks the list and its
// walks from random pivots against a sorted slice.
func TestKeyListAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	gen := rand.New(rand.NewPCG(5, 7))
	randomKey := func() Key {
		var k Key
		for i := range k {
			k[i] = byte(gen.Uint32())
		}
		return k
	}
	var l keyList
	var model []Key
	var pool []Key
	for step := range 5000 {
		var k Key
		switch {
		case len(pool) > 0 && rng.IntN(10) == 0:
			k = pool[rng.IntN(len(pool))] // a duplicate
		case rng.IntN(3) == 0:
			k = randomKey() // anywhere
		default:
			k = randomKey()
			k[0], k[1] = 0xf0, byte(step>>8) // after most keys
			k[2] = byte(step)
		}
		pool = append(pool, k)
		l.insert(k)
		if i, found := slices.BinarySearchFunc(model, k, Key.Compare); !found {
			model = slices.Insert(model, i, k)
		}
		if step%97 != 0 {
			continue
		}
		for _, c := range l.chunks {
			if len(c) == 0 || len(c) > keyListChunk {
				t.Fatalf("step %d: a chunk of %d keys", step, len(c))
			}
		}
		if got := slices.Concat(l.chunks...); !slices.Equal(got, model) {
			t.Fatalf("step %d: list holds %d keys, model %d, or in another order", step, len(got), len(model))
		}
		for range 20 {
			pivot := pool[rng.IntN(len(pool))]
			if rng.IntN(2) == 0 {
				pivot = randomKey()
			}
			limit := 1 + rng.IntN(300)
			i, _ := slices.BinarySearchFunc(model, pivot, Key.Compare)
			want := model[i:min(len(model), i+limit)]
			if got := walk(l.ascend, pivot, limit); !slices.Equal(got, want) {
				t.Fatalf("step %d: ascend from a pivot: %d keys, want %d", step, len(got), len(want))
			}
			want = slices.Clone(model[max(0, i-limit):i])
			slices.Reverse(want)
			if got := walk(l.descend, pivot, limit); !slices.Equal(got, want) {
				t.Fatalf("step %d: descend before a pivot: %d keys, want %d", step, len(got), len(want))
			}
		}
	}
}

// walk collects up to limit keys of a keyList walk.
func walk(f func(Key, func(Key) bool), pivot Key, limit int) []Key {
	var out []Key
	f(pivot, func(k Key) bool {
		out = append(out, k)
		return len(out) < limit
	})
	return out
}
