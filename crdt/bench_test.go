package crdt

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
)

// BenchmarkAdd adds ~300-byte events one at a time, and BenchmarkMerge in
// batches of 1,000, on the in-memory store and on Pebble:
//
//	go test -run '^$' -bench 'Add|Merge' ./crdt
func BenchmarkAdd(b *testing.B) {
	for _, store := range []string{"memory", "pebble"} {
		b.Run(store, func(b *testing.B) {
			s := storeSet(b, store)
			evs := fixture.New(50, 4).Batch(b.N)
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Add(context.Background(), evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkMerge(b *testing.B) {
	for _, store := range []string{"memory", "pebble"} {
		b.Run(store, func(b *testing.B) {
			s := storeSet(b, store)
			g := fixture.New(51, 4)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				batch := g.Batch(1000)
				b.StartTimer()
				if _, err := s.Merge(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func storeSet(b *testing.B, store string) *Set {
	b.Helper()
	if store == "memory" {
		return newMemorySet(b)
	}
	ds, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ds.Close() })
	return newSet(b, ds)
}

// BenchmarkFingerprint computes the fingerprint of a random key range of a
// set of 1,000,000 events:
//
//	go test -run '^$' -bench Fingerprint ./crdt
func BenchmarkFingerprint(b *testing.B) {
	keys := newKeyGen(1).keys(1_000_000)
	s := benchSet(keys)
	rng := rand.New(rand.NewPCG(2, 3))
	ranges := make([]Range, 1024)
	for i := range ranges {
		x, y := keys[rng.IntN(len(keys))], keys[rng.IntN(len(keys))]
		if y.Compare(x) < 0 {
			x, y = y, x
		}
		ranges[i] = Range{From: x, To: y}
	}
	i := 0
	for b.Loop() {
		s.Fingerprint(ranges[i%len(ranges)])
		i++
	}
}
