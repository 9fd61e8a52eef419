package keytree

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
)

// model is the naive reference the tree is checked against: a set, sorted
// on demand, and sums computed with math/big.
type model struct {
	set    map[Key]struct{}
	sorted []Key
	dirty  bool
}

func newModel() *model { return &model{set: map[Key]struct{}{}} }

func (m *model) insert(k Key) bool {
	if _, ok := m.set[k]; ok {
		return false
	}
	m.set[k] = struct{}{}
	m.dirty = true
	return true
}

func (m *model) dropBelow(k Key) int {
	n := 0
	for x := range m.set {
		if compareKeys(&x, &k) < 0 {
			delete(m.set, x)
			n++
		}
	}
	m.dirty = m.dirty || n > 0
	return n
}

func (m *model) keys() []Key {
	if m.dirty || len(m.sorted) != len(m.set) {
		m.sorted = m.sorted[:0]
		for k := range m.set {
			m.sorted = append(m.sorted, k)
		}
		slices.SortFunc(m.sorted, func(a, b Key) int { return compareKeys(&a, &b) })
		m.dirty = false
	}
	return m.sorted
}

func (m *model) rank(k Key) int {
	ks := m.keys()
	return sort.Search(len(ks), func(i int) bool { return compareKeys(&ks[i], &k) >= 0 })
}

var two256 = new(big.Int).Lsh(big.NewInt(1), 256)

// leInt reads b as a little-endian unsigned integer.
func leInt(b []byte) *big.Int {
	be := slices.Clone(b)
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

// bigSum converts x mod 2^256 to a Sum.
func bigSum(x *big.Int) Sum {
	x = new(big.Int).Mod(x, two256)
	var s Sum
	x.FillBytes(s[:])
	slices.Reverse(s[:])
	return s
}

// prefixes returns p with p[i] the sum of the IDs of keys[:i].
func prefixes(keys []Key) []*big.Int {
	p := make([]*big.Int, len(keys)+1)
	p[0] = new(big.Int)
	for i := range keys {
		p[i+1] = new(big.Int).Add(p[i], leInt(keys[i][IDOffset:]))
	}
	return p
}

func rangeSum(p []*big.Int, lo, hi int) Sum {
	return bigSum(new(big.Int).Sub(p[hi], p[lo]))
}

// keyGen makes keys shaped like real ones: random timestamps in a narrow
// window (so some share a timestamp), appends past every earlier key, and
// now and then an all-ones ID to push carries through every limb.
type keyGen struct {
	r    *rand.Rand
	next uint64 // wall time of the next append
}

func newKeyGen(seed uint64) *keyGen {
	return &keyGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), next: 1 << 40}
}

func (g *keyGen) fill(k *Key, wall uint64, logical uint32) {
	binary.BigEndian.PutUint64(k[0:], wall)
	binary.BigEndian.PutUint32(k[8:], logical)
	if g.r.IntN(50) == 0 {
		for i := IDOffset; i < KeyLen; i++ {
			k[i] = 0xff
		}
		k[IDOffset] = byte(g.r.IntN(256))
		return
	}
	for i := IDOffset; i < KeyLen; i += 8 {
		binary.LittleEndian.PutUint64(k[i:], g.r.Uint64())
	}
}

// random returns a key somewhere among the keys made so far.
func (g *keyGen) random() Key {
	var k Key
	g.fill(&k, uint64(1<<40-1<<20)+g.r.Uint64N(g.next-(1<<40)+1<<20), uint32(g.r.IntN(3)))
	return k
}

// appended returns a key above every key made so far.
func (g *keyGen) appended() Key {
	var k Key
	g.fill(&k, g.next, 0)
	g.next += 1 + g.r.Uint64N(1000)
	return k
}

// near returns a key just below the newest ones, as an event from a peer
// whose clock lags a little would be.
func (g *keyGen) near() Key {
	var k Key
	back := min(g.next-(1<<40), 1+g.r.Uint64N(3000))
	g.fill(&k, g.next-back, 0)
	return k
}

// checkTree verifies the structural invariants of t: stored counts and sums
// match the keys, separators bound their children, keys ascend, all leaves
// sit at one depth, nodes respect their capacities, and the node counts
// behind Bytes are right.
func checkTree(t *Tree) error {
	if t.root == nil {
		if t.n != 0 || t.height != 0 || t.leaves != 0 || t.inners != 0 {
			return fmt.Errorf("empty tree with n=%d height=%d leaves=%d inners=%d", t.n, t.height, t.leaves, t.inners)
		}
		return nil
	}
	c := checker{t: t}
	n, s, _, _, err := c.inner(t.root, t.height)
	if err != nil {
		return err
	}
	if n != t.n || s != t.sum {
		return fmt.Errorf("tree totals: n=%d sum=%x, stored n=%d sum=%x", n, s, t.n, t.sum)
	}
	if c.leaves != t.leaves || c.inners != t.inners {
		return fmt.Errorf("node counts: found %d leaves %d inners, recorded %d %d", c.leaves, c.inners, t.leaves, t.inners)
	}
	return nil
}

type checker struct {
	t              *Tree
	leaves, inners int
	prev           *Key
}

func (c *checker) inner(nd *inner, h int) (n int, s u256, lo, hi Key, err error) {
	c.inners++
	if nd.n < 1 || nd.n > c.t.innerLimit() {
		return 0, s, lo, hi, fmt.Errorf("inner node with %d children", nd.n)
	}
	for j := range innerCap {
		used := j < nd.n
		if (nd.kids[j] != nil) != (used && h > 1) || (nd.leaves[j] != nil) != (used && h == 1) {
			return 0, s, lo, hi, fmt.Errorf("height %d child %d of %d: kid %v leaf %v", h, j, nd.n, nd.kids[j] != nil, nd.leaves[j] != nil)
		}
	}
	for j := range nd.n {
		var cn int
		var cs u256
		var clo, chi Key
		if h == 1 {
			cn, cs, clo, chi, err = c.leaf(nd.leaves[j])
		} else {
			cn, cs, clo, chi, err = c.inner(nd.kids[j], h-1)
		}
		if err != nil {
			return 0, s, lo, hi, err
		}
		if cn != nd.counts[j] || cs != nd.sums[j] {
			return 0, s, lo, hi, fmt.Errorf("height %d child %d: count %d sum %x, stored %d %x", h, j, cn, cs, nd.counts[j], nd.sums[j])
		}
		if j > 0 && nd.seps[j] != clo {
			return 0, s, lo, hi, fmt.Errorf("height %d child %d: separator %x, least key %x", h, j, nd.seps[j], clo)
		}
		if j == 0 {
			lo = clo
		}
		hi = chi
		n += cn
		s.add(cs)
	}
	return n, s, lo, hi, nil
}

func (c *checker) leaf(lf *leaf) (n int, s u256, lo, hi Key, err error) {
	c.leaves++
	if lf.n < 1 || lf.n > c.t.leafLimit() {
		return 0, s, lo, hi, fmt.Errorf("leaf with %d keys", lf.n)
	}
	for i := range lf.n {
		k := &lf.keys[i]
		if c.prev != nil && compareKeys(c.prev, k) >= 0 {
			return 0, s, lo, hi, fmt.Errorf("key %x follows %x", *k, *c.prev)
		}
		c.prev = k
		s.addID(k)
	}
	return lf.n, s, lf.keys[0], lf.keys[lf.n-1], nil
}
