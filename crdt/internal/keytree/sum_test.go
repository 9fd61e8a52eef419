package keytree

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestSumAddSub(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := [][]byte{make([]byte, 32), ones(32), ones(32)}
	values[2][0] = 1
	edge := make([]byte, 32)
	edge[0] = 1 // adding this to all ones carries through every limb
	values = append(values, edge)
	for range 2000 {
		v := make([]byte, 32)
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		if r.IntN(4) == 0 {
			// Runs of 0xff or 0x00 limbs make carries and borrows cross
			// limb boundaries.
			for i := r.IntN(4) * 8; i < 32 && r.IntN(2) == 0; i++ {
				v[i] = 0xff * byte(r.IntN(2))
			}
		}
		values = append(values, v)
	}

	var s Sum
	want := new(big.Int)
	for i, v := range values {
		if r.IntN(3) == 0 {
			var o Sum
			copy(o[:], v)
			s.Sub(o)
			want.Sub(want, leInt(v))
		} else {
			s.Add(v)
			want.Add(want, leInt(v))
		}
		if s != bigSum(want) {
			t.Fatalf("after %d steps: sum %x, want %x", i+1, s, bigSum(want))
		}
	}

	// The tree's bulk path must agree with Sum.Add.
	g := newKeyGen(9)
	keys := make([]Key, 500)
	var each Sum
	for i := range keys {
		keys[i] = g.random()
		each.Add(keys[i][IDOffset:])
	}
	bulk := sumIDs(keys)
	if bulk.sum() != each {
		t.Fatalf("sumIDs = %x, Sum.Add gives %x", bulk.sum(), each)
	}
}

func ones(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	return b
}
