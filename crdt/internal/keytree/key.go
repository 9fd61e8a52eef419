package keytree

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

const (
	// KeyLen is the length of a Key: a 12-byte HLC timestamp followed by a
	// 32-byte event ID.
	KeyLen = hlc.EncodedLen + 32
	// IDOffset is where the event ID starts within a Key.
	IDOffset = hlc.EncodedLen
)

// Key orders the events of a set: the 12-byte encoding of the event's
// hybrid logical time followed by its 32-byte ID. Keys compare bytewise,
// so a set orders events by time and breaks ties by ID; every replica
// therefore lists the same events in the same order. crdt.Key is this
// type.
type Key [KeyLen]byte

// Time returns the timestamp part of k.
func (k Key) Time() hlc.Timestamp {
	t, _ := hlc.DecodeTimestamp(k[:IDOffset])
	return t
}

// ID returns the event ID part of k.
func (k Key) ID() events.ID { return events.ID(k[IDOffset:]) }

// Compare returns -1, 0 or +1 as k sorts before, with or after o.
func (k Key) Compare(o Key) int { return compareKeys(&k, &o) }

// String returns the lowercase hex form of k, which sorts as k does.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is the zero Key, which no event has.
func (k Key) IsZero() bool { return k == Key{} }

// Successor returns the smallest key after k (all 0xff bytes for all 0xff
// bytes, the largest key).
func (k Key) Successor() Key {
	for i := len(k) - 1; i >= 0; i-- {
		k[i]++
		if k[i] != 0 {
			return k
		}
	}
	for i := range k {
		k[i] = 0xff
	}
	return k
}

// compareKeys is Key.Compare without copying the keys.
func compareKeys(a, b *Key) int {
	// Most pairs differ in their first 8 bytes, the high bits of the wall
	// time; settling those inline is about twice as fast as the general
	// comparison, which matters to Build's sort.
	if x, y := a.head(), b.head(); x != y {
		if x < y {
			return -1
		}
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

// head returns the first 8 bytes of k as a big-endian integer: comparing
// heads orders keys as compareKeys does whenever the heads differ, without a
// call.
func (k *Key) head() uint64 { return binary.BigEndian.Uint64(k[:8]) }
