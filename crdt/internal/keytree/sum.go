package keytree

import (
	"encoding/binary"
	"math/bits"
)

// Sum is a 256-bit unsigned integer in little-endian byte order: the sum,
// modulo 2^256, of event IDs each read as a little-endian integer. This is
// the Negentropy fingerprint accumulator; addition commutes, so the sum of a
// set does not depend on the order its members were added in.
type Sum [32]byte

// Add sets s to s + id mod 2^256, reading id as a 256-bit little-endian
// integer. It panics if id is not 32 bytes long.
func (s *Sum) Add(id []byte) {
	if len(id) != 32 {
		panic("keytree: Sum.Add of a value that is not 32 bytes")
	}
	a := s.u256()
	a.add(loadU256(id))
	*s = a.sum()
}

// Sub sets s to s - o mod 2^256.
func (s *Sum) Sub(o Sum) {
	a := s.u256()
	a.sub(o.u256())
	*s = a.sum()
}

// u256 is the working form of a Sum: four 64-bit limbs, least significant
// first. The tree stores aggregates in this form so that adding them needs
// no byte shuffling.
type u256 [4]uint64

func loadU256(b []byte) u256 {
	_ = b[31]
	return u256{
		binary.LittleEndian.Uint64(b[0:]),
		binary.LittleEndian.Uint64(b[8:]),
		binary.LittleEndian.Uint64(b[16:]),
		binary.LittleEndian.Uint64(b[24:]),
	}
}

func (s *Sum) u256() u256 { return loadU256(s[:]) }

func (a *u256) sum() Sum {
	var s Sum
	binary.LittleEndian.PutUint64(s[0:], a[0])
	binary.LittleEndian.PutUint64(s[8:], a[1])
	binary.LittleEndian.PutUint64(s[16:], a[2])
	binary.LittleEndian.PutUint64(s[24:], a[3])
	return s
}

func (a *u256) add(b u256) {
	var c uint64
	a[0], c = bits.Add64(a[0], b[0], 0)
	a[1], c = bits.Add64(a[1], b[1], c)
	a[2], c = bits.Add64(a[2], b[2], c)
	a[3], _ = bits.Add64(a[3], b[3], c)
}

func (a *u256) sub(b u256) {
	var c uint64
	a[0], c = bits.Sub64(a[0], b[0], 0)
	a[1], c = bits.Sub64(a[1], b[1], c)
	a[2], c = bits.Sub64(a[2], b[2], c)
	a[3], _ = bits.Sub64(a[3], b[3], c)
}

func (a *u256) addID(k *Key) { a.add(loadU256(k[IDOffset:])) }

// sumIDs returns the sum of the IDs of keys. It keeps the limbs in locals
// rather than going through addID so the loop runs out of registers: it is
// the partial-leaf scan that bounds the cost of a range sum.
func sumIDs(keys []Key) u256 {
	var s0, s1, s2, s3, c uint64
	for i := range keys {
		id := keys[i][IDOffset:]
		s0, c = bits.Add64(s0, binary.LittleEndian.Uint64(id[0:]), 0)
		s1, c = bits.Add64(s1, binary.LittleEndian.Uint64(id[8:]), c)
		s2, c = bits.Add64(s2, binary.LittleEndian.Uint64(id[16:]), c)
		s3, _ = bits.Add64(s3, binary.LittleEndian.Uint64(id[24:]), c)
	}
	return u256{s0, s1, s2, s3}
}
