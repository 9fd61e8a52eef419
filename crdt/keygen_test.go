package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// fingerprint hashes a range's sum and count the way reconciliation does
// (package rbsr, which tests here cannot import), so that tests compare one
// value per range.
func fingerprint(s *Set, r Range) [16]byte {
	sum, count := s.Sum(r)
	h := sha256.Sum256(binary.AppendUvarint(sum[:], uint64(count)))
	return [16]byte(h[:16])
}

// benchSet returns a Set holding keys in its ordered index only: enough for
// range sums, which read nothing else, and quick to build at a million keys.
func benchSet(keys []Key) *Set {
	tk := make([]keytree.Key, len(keys))
	for i, k := range keys {
		tk[i] = keytree.Key(k)
	}
	s := &Set{}
	s.mu.tree = keytree.Build(tk)
	return s
}

// keyGen makes keys shaped like real ones: times a few microseconds apart,
// now and then equal, and random IDs.
type keyGen struct {
	rng  *rand.Rand
	wall int64
}

func newKeyGen(seed uint64) *keyGen {
	return &keyGen{rng: rand.New(rand.NewPCG(seed, 7)), wall: fixture.Start}
}

func (g *keyGen) next() Key {
	if g.rng.IntN(16) != 0 {
		g.wall += int64(1 + g.rng.IntN(5000))
	}
	var k Key
	binary.BigEndian.PutUint64(k[0:], uint64(g.wall)^1<<63)
	binary.BigEndian.PutUint32(k[8:], uint32(g.rng.IntN(3)))
	for i := keytree.IDOffset; i < KeyLen; i += 8 {
		binary.LittleEndian.PutUint64(k[i:], g.rng.Uint64())
	}
	return k
}

func (g *keyGen) keys(n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = g.next()
	}
	return keys
}
