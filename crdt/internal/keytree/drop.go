package keytree

// DropBelow removes every key below k from t and returns how many it
// removed. It walks down the tree's left edge: the children there that lie
// wholly below k go at once, with everything under them, and the counts
// and sums on the path shrink by what left; so dropping the oldest keys,
// as a retention horizon does, costs the height of the tree plus the
// nodes freed. Nodes on the left edge may be left less full than Insert
// keeps them.
func (t *Tree) DropBelow(k Key) int {
	if t.n == 0 {
		return 0
	}
	n, s := t.dropBelow(t.root, t.height, &k)
	t.n -= n
	t.sum.sub(s)
	if t.n == 0 {
		t.forget(t.root, t.height)
		t.root, t.height, t.sum = nil, 0, u256{}
		return n
	}
	for t.height > 1 && t.root.n == 1 {
		t.root = t.root.kids[0]
		t.height--
		t.inners--
	}
	return n
}

// dropBelow removes the keys below k from under nd, which sits h levels
// above the leaves, and returns how many it removed and the sum of their
// IDs. Children left empty are removed too.
func (t *Tree) dropBelow(nd *inner, h int, k *Key) (int, u256) {
	j := nd.route(k) // children [0, j) hold keys below k alone
	var n int
	var s u256
	for x := range j {
		n += nd.counts[x]
		s.add(nd.sums[x])
		t.forgetChild(nd, x, h)
	}
	var cn int
	var cs u256
	if h == 1 {
		lf := nd.leaves[j]
		i, _ := lf.search(k)
		cn, cs = i, sumIDs(lf.keys[:i])
		lf.n = copy(lf.keys[:], lf.keys[i:lf.n])
	} else {
		cn, cs = t.dropBelow(nd.kids[j], h-1, k)
	}
	nd.counts[j] -= cn
	nd.sums[j].sub(cs)
	n += cn
	s.add(cs)
	first := j
	if nd.counts[j] == 0 {
		t.forgetChild(nd, j, h)
		first++
	}
	moveChildren(nd, 0, nd, first, nd.n-first)
	clearChildren(nd, nd.n-first, nd.n)
	nd.n -= first
	return n, s
}

// forgetChild counts child j of nd, which sits h levels above the leaves,
// and everything under it, out of the nodes t holds.
func (t *Tree) forgetChild(nd *inner, j, h int) {
	if h == 1 {
		t.leaves--
		return
	}
	t.forget(nd.kids[j], h-1)
}

// forget counts nd, which sits h levels above the leaves, and everything
// under it, out of the nodes t holds.
func (t *Tree) forget(nd *inner, h int) {
	t.inners--
	for j := range nd.n {
		t.forgetChild(nd, j, h)
	}
}
