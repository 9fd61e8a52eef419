package keytree

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// fuzzKey makes a key from a small space, so fuzzed inserts collide often.
// The ID is a SHA-256 like a real event ID, which gives the sums carries.
func fuzzKey(wall uint64, id byte) Key {
	var k Key
	binary.BigEndian.PutUint64(k[0:], wall)
	h := sha256.Sum256([]byte{id})
	copy(k[IDOffset:], h[:])
	return k
}

// FuzzTree reads its input as a node shape followed by a script of
// operations, runs them on a Tree and on the model, and compares every
// answer. The first two bytes pick tiny node capacities, so a short script
// builds a deep tree. Each operation is a byte whose value mod 8 picks
// insert, append, Has and Rank, At, Sum, Ascend or Descend, or a rebuild
// or (with bit 5 set) a DropBelow, followed by its arguments.
func FuzzTree(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{0, 10, 100, 1000} {
		script := make([]byte, n)
		for i := range script {
			script[i] = byte(r.Uint32())
		}
		f.Add(script)
	}
	appends := []byte{0, 0}
	for i := range 300 {
		appends = append(appends, 2, byte(i%4), byte(i))
	}
	f.Add(appends)

	f.Fuzz(runScript)
}

// runScript is FuzzTree's body; the script format is documented there.
func runScript(t *testing.T, data []byte) {
	// The model is quadratic in the script's length; longer scripts add
	// time, not coverage, since small nodes make short scripts deep.
	data = data[:min(len(data), 2048)]
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	leafMax, innerMax := 2+int(next()%6), 2+int(next()%4)
	tr, m := newTree(leafMax, innerMax), newModel()
	clock := uint64(1000) // appends start above every fuzzKey wall below
	for len(data) > 0 {
		switch op := next(); op % 8 {
		case 0, 1:
			k := fuzzKey(uint64(next()%32), next())
			if got, want := tr.Insert(k), m.insert(k); got != want {
				t.Fatalf("Insert(%x) = %v, want %v", k, got, want)
			}
		case 2:
			clock += uint64(next() % 4)
			k := fuzzKey(clock, next())
			if got, want := tr.Insert(k), m.insert(k); got != want {
				t.Fatalf("Insert(%x) = %v, want %v", k, got, want)
			}
		case 3:
			k := fuzzKey(uint64(next()%32), next())
			_, present := m.set[k]
			if got := tr.Has(k); got != present {
				t.Fatalf("Has(%x) = %v, want %v", k, got, present)
			}
			if got, want := tr.Rank(k), m.rank(k); got != want {
				t.Fatalf("Rank(%x) = %d, want %d", k, got, want)
			}
		case 4:
			if n := len(m.set); n > 0 {
				i := int(next()) % n
				if got, want := tr.At(i), m.keys()[i]; got != want {
					t.Fatalf("At(%d) = %x, want %x", i, got, want)
				}
			}
		case 5:
			n := len(m.set)
			lo, hi := int(next())%(n+1), int(next())%(n+1)
			lo, hi = min(lo, hi), max(lo, hi)
			if got, want := tr.Sum(lo, hi), rangeSum(prefixes(m.keys()), lo, hi); got != want {
				t.Fatalf("Sum(%d, %d) = %x, want %x", lo, hi, got, want)
			}
		case 6:
			from, limit := int(next())-2, 1+int(next())
			if op&8 == 0 {
				checkAscend(t, tr, m.keys(), from, limit)
			} else {
				checkDescend(t, tr, m.keys(), from, limit)
			}
		case 7:
			if op&32 != 0 {
				k := fuzzKey(uint64(next()%32)+clock*uint64(op>>7), next())
				if got, want := tr.DropBelow(k), m.dropBelow(k); got != want {
					t.Fatalf("DropBelow(%x) = %d, want %d", k, got, want)
				}
				if err := checkTree(tr); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// Rebuild from the model's keys, unsorted and with
			// duplicates when op says so.
			keys := slices.Clone(m.keys())
			if op&8 != 0 {
				keys = append(keys, keys...)
			}
			if op&16 != 0 {
				slices.Reverse(keys)
			}
			tr = build(keys, leafMax, innerMax)
			if err := checkTree(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	compare(t, tr, m, rand.New(rand.NewPCG(2, 2)))
}
