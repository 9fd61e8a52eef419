package crdt

import (
	"context"
	"testing"

	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/internal/memstore"
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
		return newSet(b, memstore.New())
	}
	ds, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ds.Close() })
	return newSet(b, ds)
}
