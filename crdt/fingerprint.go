package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
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

func fingerprintOf(sum keytree.Sum, count int) Fingerprint {
	var buf [len(sum) + binary.MaxVarintLen64]byte
	copy(buf[:], sum[:])
	n := len(sum) + binary.PutUvarint(buf[len(sum):], uint64(count))
	h := sha256.Sum256(buf[:n])
	return Fingerprint(h[:FingerprintLen])
}

// Fingerprint returns the fingerprint of the IDs of the events whose keys lie
// in r. It costs O(log n).
func (s *Set) Fingerprint(r Range) Fingerprint {
	r = s.aboveHorizon(r)
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo, hi := s.ranksLocked(r)
	return fingerprintOf(s.mu.tree.Sum(lo, hi), hi-lo)
}
