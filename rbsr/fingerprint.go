package rbsr

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// FingerprintLen is the length of a Fingerprint.
const FingerprintLen = 16

// Fingerprint summarises the IDs in a key range: the first 16 bytes of
// SHA-256(sum ‖ count), where sum is the sum of the IDs, each read as a
// 256-bit little-endian integer, mod 2^256, and count is their number as an
// unsigned varint. Two ranges holding the same IDs have the same
// fingerprint; see the package documentation for what a peer crafting IDs
// can do.
type Fingerprint [FingerprintLen]byte

func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// FingerprintOf returns the fingerprint of count IDs whose sum is sum, as
// Keys.Sum returns it.
func FingerprintOf(sum [32]byte, count int) Fingerprint {
	var buf [len(sum) + binary.MaxVarintLen64]byte
	copy(buf[:], sum[:])
	n := len(sum) + binary.PutUvarint(buf[len(sum):], uint64(count))
	h := sha256.Sum256(buf[:n])
	return Fingerprint(h[:FingerprintLen])
}

// idSum is a 256-bit unsigned integer in little-endian byte order, the
// fingerprint's accumulator: addition commutes, so a range's sum does not
// depend on the order its IDs were added in.
type idSum [32]byte

// add sets s to s + id mod 2^256. id is 32 bytes.
func (s *idSum) add(id []byte) {
	_ = id[31]
	var c uint64
	for i := 0; i < 32; i += 8 {
		var v uint64
		v, c = bits.Add64(binary.LittleEndian.Uint64(s[i:]), binary.LittleEndian.Uint64(id[i:]), c)
		binary.LittleEndian.PutUint64(s[i:], v)
	}
}

// sub sets s to s - o mod 2^256.
func (s *idSum) sub(o idSum) {
	var c uint64
	for i := 0; i < 32; i += 8 {
		var v uint64
		v, c = bits.Sub64(binary.LittleEndian.Uint64(s[i:]), binary.LittleEndian.Uint64(o[i:]), c)
		binary.LittleEndian.PutUint64(s[i:], v)
	}
}
