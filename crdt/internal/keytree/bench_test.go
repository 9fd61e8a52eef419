package keytree

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

const benchN = 1_000_000

// randomKeys returns n keys with random timestamps and IDs.
func randomKeys(n int, seed uint64) []Key {
	r := rand.New(rand.NewPCG(seed, 0))
	keys := make([]Key, n)
	for i := range keys {
		for j := 0; j+8 <= KeyLen; j += 8 {
			binary.LittleEndian.PutUint64(keys[i][j:], r.Uint64())
		}
		binary.LittleEndian.PutUint32(keys[i][40:], r.Uint32())
	}
	return keys
}

// appendKey writes into k a key above every key from a smaller i, with an
// ID taken from ids.
func appendKey(k *Key, i int, ids []Key) {
	*k = ids[i%len(ids)]
	binary.BigEndian.PutUint64(k[0:], uint64(i))
	binary.BigEndian.PutUint32(k[8:], 0)
}

var (
	benchOnce             sync.Once
	benchRandom, benchBlt *Tree
)

// benchTrees returns two read-only trees of benchN keys: one grown by random
// inserts, one bulk loaded. Read benchmarks share them.
func benchTrees() (random, built *Tree) {
	benchOnce.Do(func() {
		keys := randomKeys(benchN, 1)
		benchRandom = New()
		for _, k := range keys {
			benchRandom.Insert(k)
		}
		benchBlt = Build(keys)
	})
	return benchRandom, benchBlt
}

func BenchmarkInsertAppend(b *testing.B) {
	ids := randomKeys(1<<16, 2)
	t := New()
	var k Key
	b.ResetTimer()
	for i := range b.N {
		appendKey(&k, i, ids)
		t.Insert(k)
	}
	b.ReportMetric(float64(t.Bytes())/float64(t.Len()), "B/key")
}

// BenchmarkInsertRandom inserts random keys into a tree that already holds
// benchN random keys. Keys are made in blocks with the timer stopped.
func BenchmarkInsertRandom(b *testing.B) {
	t := New()
	for _, k := range randomKeys(benchN, 3) {
		t.Insert(k)
	}
	const block = 1 << 16
	r := rand.New(rand.NewPCG(4, 0))
	keys := make([]Key, block)
	b.ResetTimer()
	for i := range b.N {
		if i%block == 0 {
			b.StopTimer()
			for j := range keys {
				for x := 0; x+8 <= KeyLen; x += 8 {
					binary.LittleEndian.PutUint64(keys[j][x:], r.Uint64())
				}
			}
			b.StartTimer()
		}
		t.Insert(keys[i%block])
	}
}

func BenchmarkBuild(b *testing.B) {
	keys := randomKeys(benchN, 5)
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b Key) int { return compareKeys(&a, &b) })
	b.Run("sorted", func(b *testing.B) {
		for range b.N {
			Build(sorted)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchN), "ns/key")
	})
	b.Run("unsorted", func(b *testing.B) {
		work := make([]Key, len(keys))
		for range b.N {
			b.StopTimer()
			copy(work, keys)
			b.StartTimer()
			Build(work)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchN), "ns/key")
	})
}

// fingerprint is the reconciliation fingerprint of a range, as the design
// defines it: the first 16 bytes of SHA-256(sum ‖ varint count).
func fingerprint(s Sum, count int) [16]byte {
	var buf [32 + binary.MaxVarintLen64]byte
	copy(buf[:], s[:])
	n := binary.PutUvarint(buf[32:], uint64(count))
	h := sha256.Sum256(buf[:32+n])
	return [16]byte(h[:16])
}

func BenchmarkSumRange(b *testing.B) {
	random, built := benchTrees()
	r := rand.New(rand.NewPCG(6, 0))
	ranges := make([][2]int, 4096)
	for i := range ranges {
		lo, hi := r.IntN(benchN+1), r.IntN(benchN+1)
		ranges[i] = [2]int{min(lo, hi), max(lo, hi)}
	}
	for _, tc := range []struct {
		name string
		t    *Tree
	}{{"random", random}, {"built", built}} {
		b.Run(tc.name+"/sum", func(b *testing.B) {
			var sink Sum
			for i := range b.N {
				lh := ranges[i%len(ranges)]
				sink = tc.t.Sum(lh[0], lh[1])
			}
			_ = sink
		})
		b.Run(tc.name+"/fingerprint", func(b *testing.B) {
			var sink [16]byte
			for i := range b.N {
				lh := ranges[i%len(ranges)]
				sink = fingerprint(tc.t.Sum(lh[0], lh[1]), lh[1]-lh[0])
			}
			_ = sink
		})
	}
}

func BenchmarkAt(b *testing.B) {
	random, _ := benchTrees()
	r := rand.New(rand.NewPCG(7, 0))
	idx := make([]int, 4096)
	for i := range idx {
		idx[i] = r.IntN(benchN)
	}
	b.ResetTimer()
	var sink Key
	for i := range b.N {
		sink = random.At(idx[i%len(idx)])
	}
	_ = sink
}

func BenchmarkRank(b *testing.B) {
	random, _ := benchTrees()
	probes := randomKeys(4096, 8)
	b.ResetTimer()
	var sink int
	for i := range b.N {
		sink += random.Rank(probes[i%len(probes)])
	}
	_ = sink
}

// TestHeapPerKey measures the heap a tree of benchN keys holds, grown by
// random inserts, by appends and by Build, and checks it against budget.
// Run with -v to see the figures.
func TestHeapPerKey(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocates million-key trees; slow and unrepresentative under -race")
	}
	keys := randomKeys(benchN, 9)
	ids := keys[:1<<16]
	for _, tc := range []struct {
		name   string
		budget float64
		grow   func() *Tree
	}{
		{"random inserts", 120, func() *Tree {
			tr := New()
			for _, k := range keys {
				tr.Insert(k)
			}
			return tr
		}},
		{"appends", 50, func() *Tree {
			tr := New()
			var k Key
			for i := range benchN {
				appendKey(&k, i, ids)
				tr.Insert(k)
			}
			return tr
		}},
		{"Build", 50, func() *Tree { return Build(keys) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tr := tc.grow()
			runtime.GC()
			runtime.ReadMemStats(&after)
			perKey := float64(after.HeapAlloc-before.HeapAlloc) / float64(tr.Len())
			t.Logf("%s: %d keys, %.1f heap bytes/key (Bytes() says %.1f), height %d",
				tc.name, tr.Len(), perKey, float64(tr.Bytes())/float64(tr.Len()), tr.height)
			if perKey > tc.budget {
				t.Errorf("%.1f heap bytes per key, budget %.0f", perKey, tc.budget)
			}
			runtime.KeepAlive(tr)
		})
	}
	runtime.KeepAlive(keys)
}
