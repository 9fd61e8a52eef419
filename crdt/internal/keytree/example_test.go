package keytree

import (
	"encoding/binary"
	"fmt"
)

// ExampleTree shows the calls a reconciler makes to fingerprint a key range.
func ExampleTree() {
	tr := New()
	for i := range 1000 {
		var k Key
		binary.BigEndian.PutUint64(k[0:], uint64(i)) // timestamp
		k[IDOffset] = 1                              // ID = 1
		tr.Insert(k)
	}
	var from, to Key
	binary.BigEndian.PutUint64(from[0:], 100)
	binary.BigEndian.PutUint64(to[0:], 200)
	lo, hi := tr.Rank(from), tr.Rank(to)
	sum := tr.Sum(lo, hi)
	mid := tr.At(lo + (hi-lo)/2)
	fmt.Println(lo, hi, sum[0], binary.BigEndian.Uint64(mid[0:]))
	// Output: 100 200 100 150
}
