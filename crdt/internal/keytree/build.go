package keytree

import "slices"

// Build returns a Tree holding keys. Duplicates are dropped. If keys are not
// already in ascending order Build sorts them in place, so the caller sees
// them reordered; sorted input, the usual case when the keys come off disk
// in key order, costs one pass to check. Build does not retain keys.
//
// Every leaf and inner node is filled to capacity except the last on each
// level, so a built tree costs close to KeyLen heap bytes per key. Inserting
// at random into it later splits the full nodes as it goes; appending does
// not.
func Build(keys []Key) *Tree { return build(keys, 0, 0) }

// build is Build with the node capacities of newTree; zero means the
// default.
func build(keys []Key, leafMax, innerMax int) *Tree {
	t := &Tree{leafMax: leafMax, innerMax: innerMax}
	if len(keys) == 0 {
		return t
	}
	if !isSorted(keys) {
		slices.SortFunc(keys, func(a, b Key) int { return compareKeys(&a, &b) })
	}

	lmax := t.leafLimit()
	var level []entry
	var lf *leaf
	for i := range keys {
		k := &keys[i]
		if i > 0 && *k == keys[i-1] {
			continue
		}
		if lf == nil || lf.n == lmax {
			lf = t.newLeaf()
			level = append(level, entry{sep: *k, leaf: lf})
		}
		lf.keys[lf.n] = *k
		lf.n++
	}
	for i := range level {
		e := &level[i]
		e.count = e.leaf.n
		e.sum = sumIDs(e.leaf.keys[:e.leaf.n])
		t.n += e.count
		t.sum.add(e.sum)
	}

	// Stack inner levels until one node covers everything. The root is an
	// inner node even over a single leaf; see Tree.root.
	imax := t.innerLimit()
	for t.height == 0 || len(level) > 1 {
		var up []entry
		for start := 0; start < len(level); start += imax {
			group := level[start:min(start+imax, len(level))]
			nd := t.newInner()
			u := entry{sep: group[0].sep, kid: nd}
			for j := range group {
				nd.set(j, &group[j])
				u.count += group[j].count
				u.sum.add(group[j].sum)
			}
			nd.n = len(group)
			up = append(up, u)
		}
		level = up
		t.height++
	}
	t.root = level[0].kid
	return t
}

// isSorted reports whether keys are in non-decreasing order; equal
// neighbours are duplicates, which the build loop skips.
func isSorted(keys []Key) bool {
	for i := 1; i < len(keys); i++ {
		if compareKeys(&keys[i-1], &keys[i]) > 0 {
			return false
		}
	}
	return true
}
