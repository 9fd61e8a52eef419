package keytree

import "unsafe"

const (
	// leafCap is the number of keys a leaf holds. 121 keys plus the count
	// come to 5,336 bytes, which the allocator serves from its 5,376-byte
	// class: a full leaf costs 44.4 bytes per key. Leaves this large keep the
	// inner levels small, while a partial-leaf scan (at most half a leaf, see
	// leaf.sumBefore) stays well under a microsecond.
	leafCap = 121
	// innerCap is the number of children an inner node holds. At 108 bytes
	// per child, 63 is the most that fits the allocator's 6,912-byte class.
	// A million keys then need three inner levels, and scanning a node's
	// counts or sums from its nearer end touches at most 32 entries.
	innerCap = 63
)

// Tree is an ordered set of Keys that answers, by rank, which key sits there
// and what the IDs of a run of keys sum to, each in O(log n). It only grows:
// there is no delete.
//
// A Tree is not safe for concurrent use: the caller serialises Insert against
// every other method. Only Insert writes, so any number of calls to the other
// methods may run concurrently with each other (under a read lock, say).
//
// The zero Tree is an empty tree ready to use.
type Tree struct {
	// root is nil in an empty tree. Otherwise it is an inner node even when
	// all keys fit in one leaf, so every path from the root has the same
	// shape: height inner levels, then a leaf.
	root   *inner
	height int
	n      int
	sum    u256

	// leafMax and innerMax, when not zero, lower the node capacities so
	// tests can build deep trees from few keys.
	leafMax, innerMax int

	leaves, inners int // nodes allocated, for Bytes
}

// leaf holds keys in ascending order in keys[:n]. It has no pointers, so the
// garbage collector never scans its contents.
type leaf struct {
	n    int
	keys [leafCap]Key
}

// inner holds, for each child j < n, a lower bound on the keys below it, how
// many keys are below it and what their IDs sum to. The aggregates sit in the
// parent rather than in the child so that walking a node's children by count
// or by sum reads one contiguous array instead of chasing n pointers.
type inner struct {
	n int
	// seps[j] is the least key below child j. Keys at or above seps[j] and
	// below seps[j+1] belong to child j. seps[0] is never consulted: keys
	// below seps[1] go to child 0 whatever their value, so on the tree's
	// leftmost path seps[0] may be above the true least key.
	seps [innerCap]Key
	// heads[j] is the first 8 bytes of seps[j] as a big-endian integer.
	// They settle almost every comparison in route, because they hold the
	// high bits of the wall time, and they are 504 contiguous bytes where
	// seps are 2,772: a step down the tree touches a few cache lines of
	// heads instead of a line per probed separator.
	heads  [innerCap]uint64
	counts [innerCap]int
	sums   [innerCap]u256
	// Exactly one of these is in use: leaves in nodes directly above the
	// leaves, kids elsewhere. Two typed arrays cost 504 bytes per node (a
	// fraction of a byte per key) and save an interface dispatch or type
	// assertion at every step down.
	kids   [innerCap]*inner
	leaves [innerCap]*leaf
}

// New returns an empty Tree.
func New() *Tree { return &Tree{} }

// newTree returns an empty Tree whose nodes hold at most leafMax keys and
// innerMax children, both at least 2 and at most the array capacities.
func newTree(leafMax, innerMax int) *Tree {
	if leafMax < 2 || leafMax > leafCap || innerMax < 2 || innerMax > innerCap {
		panic("keytree: node capacity out of range")
	}
	return &Tree{leafMax: leafMax, innerMax: innerMax}
}

func (t *Tree) leafLimit() int {
	if t.leafMax == 0 {
		return leafCap
	}
	return t.leafMax
}

func (t *Tree) innerLimit() int {
	if t.innerMax == 0 {
		return innerCap
	}
	return t.innerMax
}

func (t *Tree) newLeaf() *leaf {
	t.leaves++
	return new(leaf)
}

func (t *Tree) newInner() *inner {
	t.inners++
	return new(inner)
}

// Len returns the number of keys in t.
func (t *Tree) Len() int { return t.n }

// Bytes returns roughly how many heap bytes t holds: its nodes at their
// declared sizes, without the allocator's rounding (under 2% for both node
// kinds, which are sized to fit its classes).
func (t *Tree) Bytes() int {
	return int(unsafe.Sizeof(*t)) +
		t.leaves*int(unsafe.Sizeof(leaf{})) +
		t.inners*int(unsafe.Sizeof(inner{}))
}

// search returns the index of the first key in lf not below k, and whether
// that key is k.
func (lf *leaf) search(k *Key) (int, bool) {
	lo, hi := 0, lf.n
	kh := k.head()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h := lf.keys[m].head(); h < kh || h == kh && compareKeys(&lf.keys[m], k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < lf.n && lf.keys[lo] == *k
}

// sumBefore returns the sum of the IDs of keys[:i], given total, the sum of
// all of them. It adds up whichever side of i is shorter.
func (lf *leaf) sumBefore(i int, total u256) u256 {
	if i <= lf.n/2 {
		return sumIDs(lf.keys[:i])
	}
	total.sub(sumIDs(lf.keys[i:lf.n]))
	return total
}

func (nd *inner) setSep(j int, k *Key) {
	nd.seps[j] = *k
	nd.heads[j] = k.head()
}

// route returns the child of nd whose key range holds k.
func (nd *inner) route(k *Key) int {
	kh := k.head()
	lo, hi := 1, nd.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h := nd.heads[m]; h < kh || h == kh && compareKeys(&nd.seps[m], k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// childAt returns the child of nd that holds the key of rank i within nd,
// and the number of keys in the children before it. total is the number of
// keys under nd, and i < total. It scans the counts from the nearer end.
func (nd *inner) childAt(i, total int) (j, before int) {
	if i < total/2 {
		for j = 0; ; j++ {
			c := nd.counts[j]
			if i < before+c {
				return j, before
			}
			before += c
		}
	}
	before = total
	for j = nd.n - 1; ; j-- {
		before -= nd.counts[j]
		if before <= i {
			return j, before
		}
	}
}

// countBefore returns the number of keys in children [0, j) of nd, given
// total, the number under nd.
func (nd *inner) countBefore(j, total int) int {
	c := 0
	if j <= nd.n/2 {
		for _, x := range nd.counts[:j] {
			c += x
		}
		return c
	}
	for _, x := range nd.counts[j:nd.n] {
		c += x
	}
	return total - c
}

// sumBefore returns the sum of the IDs under children [0, j) of nd, given
// total, the sum under nd.
func (nd *inner) sumBefore(j int, total u256) u256 {
	if j <= nd.n/2 {
		var s u256
		for x := range j {
			s.add(nd.sums[x])
		}
		return s
	}
	for x := j; x < nd.n; x++ {
		total.sub(nd.sums[x])
	}
	return total
}

// total returns the number of keys under nd and the sum of their IDs.
func (nd *inner) total() (int, u256) {
	var c int
	var s u256
	for j := range nd.n {
		c += nd.counts[j]
		s.add(nd.sums[j])
	}
	return c, s
}

// find returns the leaf whose key range holds k, and the number of keys in
// the leaves before it.
func (t *Tree) find(k *Key) (*leaf, int) {
	nd, total, rank := t.root, t.n, 0
	for h := t.height; ; h-- {
		j := nd.route(k)
		rank += nd.countBefore(j, total)
		total = nd.counts[j]
		if h == 1 {
			return nd.leaves[j], rank
		}
		nd = nd.kids[j]
	}
}

// Has reports whether k is in t.
func (t *Tree) Has(k Key) bool {
	if t.n == 0 {
		return false
	}
	lf, _ := t.find(&k)
	_, ok := lf.search(&k)
	return ok
}

// Rank returns the number of keys in t below k; k need not be in t.
func (t *Tree) Rank(k Key) int {
	if t.n == 0 {
		return 0
	}
	lf, rank := t.find(&k)
	i, _ := lf.search(&k)
	return rank + i
}

// locate returns the leaf that holds the key of rank i, i's index within it,
// and the sum of the IDs of every key of rank below i when withSum is set.
// 0 <= i < t.n.
func (t *Tree) locate(i int, withSum bool) (*leaf, int, u256) {
	var acc u256
	nd, total, sum := t.root, t.n, t.sum
	for h := t.height; ; h-- {
		j, before := nd.childAt(i, total)
		if withSum {
			acc.add(nd.sumBefore(j, sum))
			sum = nd.sums[j]
		}
		i -= before
		total = nd.counts[j]
		if h == 1 {
			lf := nd.leaves[j]
			if withSum {
				acc.add(lf.sumBefore(i, sum))
			}
			return lf, i, acc
		}
		nd = nd.kids[j]
	}
}

// At returns the key of rank i, counting from 0. It panics unless
// 0 <= i < Len().
func (t *Tree) At(i int) Key {
	if uint(i) >= uint(t.n) {
		panic("keytree: At index out of range")
	}
	lf, x, _ := t.locate(i, false)
	return lf.keys[x]
}

// Sum returns the sum of the IDs of the keys of rank lo through hi-1. It
// panics unless 0 <= lo <= hi <= Len(). It costs two descents, each ending
// in a scan of at most half a leaf.
func (t *Tree) Sum(lo, hi int) Sum {
	if lo < 0 || lo > hi || hi > t.n {
		panic("keytree: Sum range out of range")
	}
	if lo == hi {
		return Sum{}
	}
	s := t.prefix(hi)
	s.sub(t.prefix(lo))
	return s.sum()
}

// prefix returns the sum of the IDs of the keys of rank below i.
func (t *Tree) prefix(i int) u256 {
	switch i {
	case 0:
		return u256{}
	case t.n:
		return t.sum
	}
	_, _, s := t.locate(i, true)
	return s
}

// Ascend calls fn with each key of rank from or above, and its rank, in
// ascending order, until fn returns false. A negative from counts as 0. fn
// must not insert into t.
func (t *Tree) Ascend(from int, fn func(i int, k Key) bool) {
	from = max(from, 0)
	if from >= t.n {
		return
	}
	ascend(t.root, t.height, from, 0, t.n, fn)
}

// ascend visits the keys under nd, h levels above the leaves, from local rank
// i on; base is the rank of nd's first key and total the number under nd.
func ascend(nd *inner, h, i, base, total int, fn func(int, Key) bool) bool {
	j, before := nd.childAt(i, total)
	i -= before
	base += before
	for ; j < nd.n; j++ {
		c := nd.counts[j]
		if h == 1 {
			lf := nd.leaves[j]
			for x := i; x < lf.n; x++ {
				if !fn(base+x, lf.keys[x]) {
					return false
				}
			}
		} else if !ascend(nd.kids[j], h-1, i, base, c, fn) {
			return false
		}
		base += c
		i = 0
	}
	return true
}

// Descend calls fn with each key of rank below before, and its rank, in
// descending order, until fn returns false. A before above Len() counts as
// Len(). fn must not insert into t.
func (t *Tree) Descend(before int, fn func(i int, k Key) bool) {
	before = min(before, t.n)
	if before <= 0 {
		return
	}
	descend(t.root, t.height, before, 0, t.n, fn)
}

// descend visits the keys under nd, h levels above the leaves, of local rank
// below end, where 0 < end <= total; base is the rank of nd's first key and
// total the number under nd.
func descend(nd *inner, h, end, base, total int, fn func(int, Key) bool) bool {
	j, start := nd.childAt(end-1, total)
	end -= start
	for ; j >= 0; j-- {
		if h == 1 {
			lf := nd.leaves[j]
			for x := end - 1; x >= 0; x-- {
				if !fn(base+start+x, lf.keys[x]) {
					return false
				}
			}
		} else if !descend(nd.kids[j], h-1, end, base+start, nd.counts[j], fn) {
			return false
		}
		if j > 0 {
			end = nd.counts[j-1]
			start -= end
		}
	}
	return true
}
