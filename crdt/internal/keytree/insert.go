package keytree

// Insert adds k to t and reports whether it was absent. The counts and sums
// on the path to k's leaf grow by one key and k's ID.
//
// Keys mostly arrive in key order, since new events carry the newest
// timestamps, so the split policy is built to keep nodes full under appends:
//
//   - A full leaf whose right sibling (under the same parent) has room
//     passes its greatest key to that sibling instead of splitting.
//   - Otherwise a node that overflows splits in half, except on the right
//     edge of the tree, where it keeps everything below the new key and only
//     the new key and those above it move to the new node.
//
// A run of appends therefore leaves every node but the last on each level
// full, and events that arrive a little late, which land just before the
// rightmost leaf, fill leaves instead of halving them. Random inserts
// leave leaves about 70% full.
func (t *Tree) Insert(k Key) bool {
	if t.root == nil {
		lf := t.newLeaf()
		lf.keys[0], lf.n = k, 1
		root := t.newInner()
		root.n = 1
		root.setSep(0, &k)
		root.counts[0], root.leaves[0] = 1, lf
		root.sums[0].addID(&k)
		t.root, t.height, t.n, t.sum = root, 1, 1, root.sums[0]
		return true
	}
	ok, right := t.insert(t.root, t.height, &k, true)
	if !ok {
		return false
	}
	t.n++
	t.sum.addID(&k)
	if right != nil {
		old := t.root
		root := t.newInner()
		root.n = 2
		root.setSep(0, &old.seps[0])
		root.setSep(1, &right.seps[0])
		root.kids[0], root.kids[1] = old, right
		rc, rs := right.total()
		root.counts[1], root.sums[1] = rc, rs
		root.counts[0], root.sums[0] = t.n-rc, t.sum
		root.sums[0].sub(rs)
		t.root = root
		t.height++
	}
	return true
}

// insert adds k below nd, which sits h levels above the leaves; rightmost
// says nd is the last node on its level. It reports whether k was absent
// and, if nd split, returns the new node holding nd's upper children.
func (t *Tree) insert(nd *inner, h int, k *Key, rightmost bool) (bool, *inner) {
	j := nd.route(k)
	last := rightmost && j == nd.n-1
	var e entry
	if h == 1 {
		if nd.spill(j, k, t.leafLimit()) {
			return true, nil
		}
		ok, r := t.insertLeaf(nd.leaves[j], k, last)
		if !ok {
			return false, nil
		}
		if r == nil {
			nd.counts[j]++
			nd.sums[j].addID(k)
			return true, nil
		}
		e = entry{sep: r.keys[0], count: r.n, sum: sumIDs(r.keys[:r.n]), leaf: r}
	} else {
		ok, r := t.insert(nd.kids[j], h-1, k, last)
		if !ok {
			return false, nil
		}
		if r == nil {
			nd.counts[j]++
			nd.sums[j].addID(k)
			return true, nil
		}
		e = entry{sep: r.seps[0], kid: r}
		e.count, e.sum = r.total()
	}
	// Child j split: its entry now covers only what stayed behind, which is
	// what it held plus k minus what moved to e.
	nd.counts[j] += 1 - e.count
	nd.sums[j].addID(k)
	nd.sums[j].sub(e.sum)
	return true, t.addChild(nd, j+1, &e, rightmost)
}

// spill adds k to leaf j of nd when that leaf is full but its right
// sibling has room: the greatest of the leaf's keys and k moves to the front
// of the sibling. Near the right edge this is the common case of a full
// leaf: an event that arrives a little late lands in the leaf before the
// rightmost one, and splitting that leaf would leave two half-empty leaves
// that later keys, all newer, never fill. It reports whether it added k; it
// does nothing if leaf j is not full, has no sibling under nd, the sibling
// is full too, or k is already present.
func (nd *inner) spill(j int, k *Key, limit int) bool {
	lf := nd.leaves[j]
	if lf.n < limit || j+1 == nd.n || nd.leaves[j+1].n == limit {
		return false
	}
	i, found := lf.search(k)
	if found {
		return false
	}
	moved := *k
	if i < lf.n {
		moved = lf.keys[lf.n-1]
		lf.n--
		lf.insertAt(i, k)
	}
	nd.leaves[j+1].insertAt(0, &moved)
	nd.setSep(j+1, &moved)
	nd.sums[j].addID(k)
	nd.sums[j].sub(loadU256(moved[IDOffset:]))
	nd.counts[j+1]++
	nd.sums[j+1].addID(&moved)
	return true
}

// entry describes one child of an inner node.
type entry struct {
	sep   Key
	count int
	sum   u256
	kid   *inner
	leaf  *leaf
}

func (nd *inner) set(j int, e *entry) {
	nd.setSep(j, &e.sep)
	nd.counts[j], nd.sums[j] = e.count, e.sum
	nd.kids[j], nd.leaves[j] = e.kid, e.leaf
}

// moveChildren copies children [from, from+n) of src to dst starting at to.
// src and dst may be the same node.
func moveChildren(dst *inner, to int, src *inner, from, n int) {
	copy(dst.seps[to:to+n], src.seps[from:from+n])
	copy(dst.heads[to:to+n], src.heads[from:from+n])
	copy(dst.counts[to:to+n], src.counts[from:from+n])
	copy(dst.sums[to:to+n], src.sums[from:from+n])
	copy(dst.kids[to:to+n], src.kids[from:from+n])
	copy(dst.leaves[to:to+n], src.leaves[from:from+n])
}

// clearChildren drops the pointers of children [from, to) of nd so that
// moved children are not kept reachable from two places.
func clearChildren(nd *inner, from, to int) {
	clear(nd.kids[from:to])
	clear(nd.leaves[from:to])
}

// addChild makes e child pos of nd. If nd is full it splits, as Insert
// describes, and addChild returns the new right node.
func (t *Tree) addChild(nd *inner, pos int, e *entry, rightmost bool) *inner {
	if nd.n < t.innerLimit() {
		moveChildren(nd, pos+1, nd, pos, nd.n-pos)
		nd.set(pos, e)
		nd.n++
		return nil
	}
	s := nd.n / 2
	if rightmost && pos >= s {
		s = pos
	}
	r := t.newInner()
	r.n = nd.n - s
	moveChildren(r, 0, nd, s, r.n)
	clearChildren(nd, s, nd.n)
	nd.n = s
	if pos < s {
		moveChildren(nd, pos+1, nd, pos, nd.n-pos)
		nd.set(pos, e)
		nd.n++
	} else {
		pos -= s
		moveChildren(r, pos+1, r, pos, r.n-pos)
		r.set(pos, e)
		r.n++
	}
	return r
}

// insertLeaf adds k to lf, splitting it as Insert describes if it is full.
// It reports whether k was absent and returns the new right leaf, if any.
func (t *Tree) insertLeaf(lf *leaf, k *Key, rightmost bool) (bool, *leaf) {
	i, found := lf.search(k)
	if found {
		return false, nil
	}
	if lf.n < t.leafLimit() {
		lf.insertAt(i, k)
		return true, nil
	}
	s := lf.n / 2
	if rightmost && i >= s {
		s = i
	}
	r := t.newLeaf()
	r.n = copy(r.keys[:], lf.keys[s:lf.n])
	lf.n = s
	if i < s {
		lf.insertAt(i, k)
	} else {
		r.insertAt(i-s, k)
	}
	return true, r
}

func (lf *leaf) insertAt(i int, k *Key) {
	copy(lf.keys[i+1:lf.n+1], lf.keys[i:lf.n])
	lf.keys[i] = *k
	lf.n++
}
