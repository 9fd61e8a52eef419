package crdt

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/scopemesh/scopemesh/events"
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

// BenchmarkReceive decodes gossip-sized batches, 300 of 1,000 events, and
// merges them into an empty in-memory set, as a node receiving gossip does:
// with each event's wire form copied out of the batch, and decoded in
// place, the copy the set makes being the only one. It reports the heap
// the set holds per event, and the size of an event's encoding:
//
//	go test -run '^$' -bench Receive -benchtime 5x -count 6 ./crdt
func BenchmarkReceive(b *testing.B) {
	const batchEvents, batches = 1000, 300
	g := fixture.New(7, 4)
	data := make([][]byte, batches)
	for i := range data {
		var err error
		if data[i], err = events.EncodeBatch(g.Batch(batchEvents)); err != nil {
			b.Fatal(err)
		}
	}
	for _, inPlace := range []bool{false, true} {
		b.Run(map[bool]string{false: "copied", true: "in-place"}[inPlace], func(b *testing.B) {
			var xs []events.Encoded
			var scratch []byte
			var held uint64
			for range b.N {
				b.StopTimer()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := newMemorySet(b)
				b.StartTimer()
				for _, batch := range data {
					var err error
					if inPlace {
						xs, err = events.DefaultLimits.AppendBatchInPlace(xs[:0], batch, &scratch)
					} else {
						xs, err = events.DefaultLimits.AppendBatchEncoded(xs[:0], batch)
					}
					if err != nil {
						b.Fatal(err)
					}
					if _, err := s.MergeEncoded(context.Background(), xs); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				held = after.HeapAlloc - before.HeapAlloc
				runtime.KeepAlive(s)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batches*batchEvents), "ns/event")
			b.ReportMetric(float64(held)/float64(batches*batchEvents), "heap-B/event")
			b.ReportMetric(float64(len(xs[0].Wire())), "wire-B/event")
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

// BenchmarkSum computes the ID sum of a random key range of a
// set of 1,000,000 events:
//
//	go test -run '^$' -bench Sum ./crdt
func BenchmarkSum(b *testing.B) {
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
		s.Sum(ranges[i%len(ranges)])
		i++
	}
}
