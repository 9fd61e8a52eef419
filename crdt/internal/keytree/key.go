package keytree

import (
	"bytes"
	"encoding/binary"
)

const (
	// KeyLen is the length of a Key: a 12-byte HLC timestamp followed by a
	// 32-byte event ID.
	KeyLen = 44
	// IDOffset is where the event ID starts within a Key.
	IDOffset = 12
)

// Key is an index key: the big-endian HLC timestamp of an event followed by
// its ID. Keys order by bytes.Compare, which is (timestamp, ID) order because
// the timestamp encoding sorts like the times it encodes.
type Key [KeyLen]byte

// ID returns the 32-byte event ID within k. The slice aliases k.
func (k *Key) ID() []byte { return k[IDOffset:] }

// Compare returns -1, 0 or +1 as k sorts before, equal to or after o.
func (k *Key) Compare(o *Key) int {
	// Most pairs differ in their first 8 bytes, the high bits of the wall
	// time; settling those inline is about twice as fast as the general
	// comparison, which matters to Build's sort.
	if a, b := k.head(), o.head(); a != b {
		if a < b {
			return -1
		}
		return 1
	}
	return bytes.Compare(k[8:], o[8:])
}

// head returns the first 8 bytes of k as a big-endian integer: comparing
// heads orders keys as Compare does whenever the heads differ, without a
// call.
func (k *Key) head() uint64 { return binary.BigEndian.Uint64(k[:8]) }
