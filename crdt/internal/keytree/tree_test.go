package keytree

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// compare checks every query of t against m: Len, At at every rank, Has and
// Rank of every key and of absent neighbours, Sum over random, empty and
// full ranges, and Ascend and Descend from random ranks.
func compare(tb testing.TB, t *Tree, m *model, r *rand.Rand) {
	tb.Helper()
	if err := checkTree(t); err != nil {
		tb.Fatal(err)
	}
	keys := m.keys()
	n := len(keys)
	if t.Len() != n {
		tb.Fatalf("Len = %d, want %d", t.Len(), n)
	}
	for i, k := range keys {
		if got := t.At(i); got != k {
			tb.Fatalf("At(%d) = %x, want %x", i, got, k)
		}
		if !t.Has(k) {
			tb.Fatalf("Has(At(%d)) = false", i)
		}
		if got := t.Rank(k); got != i {
			tb.Fatalf("Rank(At(%d)) = %d", i, got)
		}
	}
	probes := []Key{{}, allOnes()}
	for range min(n, 1000) {
		k := keys[r.IntN(n)]
		k[KeyLen-1]++ // usually absent, between two keys
		probes = append(probes, k)
		k = keys[r.IntN(n)]
		k[KeyLen-1]--
		probes = append(probes, k)
	}
	for _, k := range probes {
		_, present := m.set[k]
		if got := t.Has(k); got != present {
			tb.Fatalf("Has(%x) = %v, want %v", k, got, present)
		}
		if got, want := t.Rank(k), m.rank(k); got != want {
			tb.Fatalf("Rank(%x) = %d, want %d", k, got, want)
		}
	}

	p := prefixes(keys)
	ranges := [][2]int{{0, 0}, {0, n}, {n, n}}
	for range 300 {
		lo := r.IntN(n + 1)
		hi := lo + r.IntN(n-lo+1)
		ranges = append(ranges, [2]int{lo, hi})
		if lo < n {
			ranges = append(ranges, [2]int{lo, lo + 1})
		}
	}
	for _, lh := range ranges {
		if got, want := t.Sum(lh[0], lh[1]), rangeSum(p, lh[0], lh[1]); got != want {
			tb.Fatalf("Sum(%d, %d) = %x, want %x", lh[0], lh[1], got, want)
		}
	}

	starts := []int{-1, 0, n / 2, n, n + 1}
	for range 20 {
		starts = append(starts, r.IntN(n+1))
	}
	for _, from := range starts {
		limit := n + 1
		if r.IntN(2) == 0 {
			limit = 1 + r.IntN(300)
		}
		checkAscend(tb, t, keys, from, limit)
		checkDescend(tb, t, keys, from, limit)
	}
	checkAscend(tb, t, keys, 0, n+1)
	checkDescend(tb, t, keys, n, n+1)
}

// checkAscend runs Ascend(from) for up to limit keys (stopping it by
// returning false) and compares what it saw with keys.
func checkAscend(tb testing.TB, t *Tree, keys []Key, from, limit int) {
	tb.Helper()
	want := max(from, 0)
	seen := 0
	t.Ascend(from, func(i int, k Key) bool {
		if i != want || k != keys[i] {
			tb.Fatalf("Ascend(%d): got rank %d key %x, want rank %d", from, i, k, want)
		}
		want++
		seen++
		return seen < limit
	})
	if exp := min(limit, max(len(keys)-max(from, 0), 0)); seen != exp {
		tb.Fatalf("Ascend(%d) with limit %d visited %d keys, want %d", from, limit, seen, exp)
	}
}

func checkDescend(tb testing.TB, t *Tree, keys []Key, before, limit int) {
	tb.Helper()
	want := min(before, len(keys)) - 1
	seen := 0
	t.Descend(before, func(i int, k Key) bool {
		if i != want || k != keys[i] {
			tb.Fatalf("Descend(%d): got rank %d key %x, want rank %d", before, i, k, want)
		}
		want--
		seen++
		return seen < limit
	})
	if exp := min(limit, max(min(before, len(keys)), 0)); seen != exp {
		tb.Fatalf("Descend(%d) with limit %d visited %d keys, want %d", before, limit, seen, exp)
	}
}

func allOnes() Key {
	var k Key
	for i := range k {
		k[i] = 0xff
	}
	return k
}

// insertMix inserts count keys into t and m: random, appended, slightly
// late, and re-inserted duplicates, checking every return value.
func insertMix(tb testing.TB, t *Tree, m *model, g *keyGen, count int) {
	tb.Helper()
	var recent []Key
	for range count {
		var k Key
		switch x := g.r.IntN(10); {
		case x < 4:
			k = g.random()
		case x < 7:
			k = g.appended()
		case x < 8:
			k = g.near()
		default:
			if len(recent) == 0 {
				k = g.appended()
			} else {
				k = recent[g.r.IntN(len(recent))]
			}
		}
		want := m.insert(k)
		if got := t.Insert(k); got != want {
			tb.Fatalf("Insert(%x) = %v, want %v", k, got, want)
		}
		if len(recent) < 1000 {
			recent = append(recent, k)
		} else {
			recent[g.r.IntN(len(recent))] = k
		}
	}
}

var sizes = []int{0, 1, 2, leafCap - 1, leafCap, leafCap + 1, 2*leafCap + 1, 10_000, 100_000}

func TestInsertAgainstModel(t *testing.T) {
	for _, size := range sizes {
		if size > 10_000 && testing.Short() {
			continue
		}
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			g := newKeyGen(uint64(size))
			tr, m := New(), newModel()
			for len(m.set) < size {
				m.insert(g.random())
			}
			for k := range m.set { // map order: random
				if !tr.Insert(k) {
					t.Fatalf("Insert(%x) of a new key = false", k)
				}
			}
			compare(t, tr, m, g.r)
			insertMix(t, tr, m, g, size/2+10)
			compare(t, tr, m, g.r)
		})
	}
}

// TestDropBelowAgainstModel drops ever later prefixes of trees, between
// runs of inserts, as a retention horizon does, down to nothing.
func TestDropBelowAgainstModel(t *testing.T) {
	for _, shape := range [][2]int{{leafCap, innerCap}, {2, 2}, {3, 4}, {7, 5}} {
		t.Run(fmt.Sprintf("leaf%d/inner%d", shape[0], shape[1]), func(t *testing.T) {
			g := newKeyGen(uint64(shape[0]*100 + shape[1]))
			tr, m := newTree(shape[0], shape[1]), newModel()
			for round := range 8 {
				insertMix(t, tr, m, g, 2000)
				keys := m.keys()
				cut := keys[len(keys)*(round+1)/9]
				if got, want := tr.DropBelow(cut), m.dropBelow(cut); got != want {
					t.Fatalf("round %d: DropBelow = %d, want %d", round, got, want)
				}
				if err := checkTree(tr); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				compare(t, tr, m, g.r)
			}
			var past Key
			for i := range past {
				past[i] = 0xff
			}
			if got, want := tr.DropBelow(past), m.dropBelow(past); got != want || tr.Len() != 0 {
				t.Fatalf("dropping everything: %d, want %d; %d left", got, want, tr.Len())
			}
			if err := checkTree(tr); err != nil {
				t.Fatal(err)
			}
			insertMix(t, tr, m, g, 100)
			compare(t, tr, m, g.r)
		})
	}
}

// TestSmallNodes checks trees whose nodes hold a handful of entries, so a
// few thousand keys make them deep and exercise every split path.
func TestSmallNodes(t *testing.T) {
	for _, leafMax := range []int{2, 3, 4, 7} {
		for _, innerMax := range []int{2, 3, 4, 5} {
			t.Run(fmt.Sprintf("leaf%d/inner%d", leafMax, innerMax), func(t *testing.T) {
				g := newKeyGen(uint64(leafMax*100 + innerMax))
				tr, m := newTree(leafMax, innerMax), newModel()
				for range 4 {
					insertMix(t, tr, m, g, 500)
					compare(t, tr, m, g.r)
				}
			})
		}
	}
}

func TestBuild(t *testing.T) {
	for _, size := range sizes {
		if size > 10_000 && testing.Short() {
			continue
		}
		g := newKeyGen(uint64(size) + 7)
		var keys []Key
		for range size {
			keys = append(keys, g.random())
		}
		sorted := slices.Clone(keys)
		slices.SortFunc(sorted, func(a, b Key) int { return compareKeys(&a, &b) })
		var dups []Key
		for _, k := range keys {
			dups = append(dups, k)
			if g.r.IntN(3) == 0 {
				dups = append(dups, k)
			}
		}
		sortedDups := slices.Clone(dups)
		slices.SortFunc(sortedDups, func(a, b Key) int { return compareKeys(&a, &b) })
		inputs := map[string][]Key{
			"sorted":            sorted,
			"unsorted":          keys,
			"duplicates":        dups,
			"sorted-duplicates": sortedDups,
		}
		for name, in := range inputs {
			t.Run(fmt.Sprintf("%d/%s", size, name), func(t *testing.T) {
				m := newModel()
				for _, k := range in {
					m.insert(k)
				}
				tr := Build(slices.Clone(in))
				compare(t, tr, m, g.r)
				if leaves, inners := packed(tr.Len()); tr.leaves != leaves || tr.inners != inners {
					t.Errorf("%d keys in %d leaves and %d inner nodes, want %d and %d", tr.Len(), tr.leaves, tr.inners, leaves, inners)
				}
				insertMix(t, tr, m, g, size/2+10)
				compare(t, tr, m, g.r)
			})
		}
	}
}

func TestBuildSmallNodes(t *testing.T) {
	g := newKeyGen(99)
	for _, size := range []int{1, 2, 3, 5, 17, 64, 65, 1000} {
		for _, caps := range [][2]int{{2, 2}, {3, 2}, {2, 3}, {4, 5}} {
			t.Run(fmt.Sprintf("%d/%v", size, caps), func(t *testing.T) {
				m := newModel()
				var keys []Key
				for range size {
					k := g.random()
					keys = append(keys, k, k)
					m.insert(k)
				}
				tr := build(keys, caps[0], caps[1])
				compare(t, tr, m, g.r)
				insertMix(t, tr, m, g, 300)
				compare(t, tr, m, g.r)
			})
		}
	}
}

// packed returns how many leaves and inner nodes hold n keys when every node
// but the last on each level is full.
func packed(n int) (leaves, inners int) {
	if n == 0 {
		return 0, 0
	}
	leaves = (n + leafCap - 1) / leafCap
	for level := leaves; ; {
		level = (level + innerCap - 1) / innerCap
		inners += level
		if level == 1 {
			return leaves, inners
		}
	}
}

// TestAppendPacksLeaves checks the right-edge split: appending in key order
// leaves every node full but the last on each level, and keys that arrive a
// little late cost little.
func TestAppendPacksLeaves(t *testing.T) {
	g := newKeyGen(5)
	tr := New()
	const n = 50_000
	for range n {
		tr.Insert(g.appended())
	}
	if err := checkTree(tr); err != nil {
		t.Fatal(err)
	}
	leaves, inners := packed(n)
	if tr.leaves != leaves || tr.inners != inners {
		t.Errorf("appends: %d leaves and %d inner nodes, want %d and %d", tr.leaves, tr.inners, leaves, inners)
	}
	if perKey := float64(tr.Bytes()) / n; perKey > 46 {
		t.Errorf("appends: %.1f bytes per key, want at most 46", perKey)
	}

	tr = New()
	for i := range n {
		if i%4 == 3 {
			tr.Insert(g.near())
		} else {
			tr.Insert(g.appended())
		}
	}
	if err := checkTree(tr); err != nil {
		t.Fatal(err)
	}
	if fill := float64(tr.Len()) / float64(tr.leaves*leafCap); fill < 0.9 {
		t.Errorf("appends with late keys: leaves %.0f%% full, want at least 90%%", 100*fill)
	}
}

func TestPanics(t *testing.T) {
	tr := New()
	g := newKeyGen(2)
	for range 10 {
		tr.Insert(g.appended())
	}
	for name, f := range map[string]func(){
		"At(-1)":         func() { tr.At(-1) },
		"At(Len)":        func() { tr.At(tr.Len()) },
		"empty At(0)":    func() { New().At(0) },
		"Sum(2,1)":       func() { tr.Sum(2, 1) },
		"Sum(-1,1)":      func() { tr.Sum(-1, 1) },
		"Sum(0,Len+1)":   func() { tr.Sum(0, tr.Len()+1) },
		"Sum.Add(short)": func() { new(Sum).Add(make([]byte, 31)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestZeroTree checks that a zero Tree works like New().
func TestZeroTree(t *testing.T) {
	var tr Tree
	m := newModel()
	g := newKeyGen(3)
	compare(t, &tr, m, g.r)
	insertMix(t, &tr, m, g, 1000)
	compare(t, &tr, m, g.r)
}

// TestConcurrentReads runs the read methods from several goroutines at once,
// which the Tree documents as safe; under -race it proves they write nothing.
func TestConcurrentReads(t *testing.T) {
	g := newKeyGen(4)
	tr := New()
	for range 20_000 {
		tr.Insert(g.random())
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 0))
			for range 2000 {
				i := r.IntN(tr.Len())
				k := tr.At(i)
				if !tr.Has(k) || tr.Rank(k) != i {
					t.Errorf("At/Has/Rank disagree at %d", i)
					return
				}
				tr.Sum(i/2, i)
			}
			tr.Ascend(100, func(int, Key) bool { return true })
			tr.Descend(100, func(int, Key) bool { return true })
		})
	}
	wg.Wait()
}
