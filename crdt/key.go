package crdt

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// KeyLen is the length of a Key.
const KeyLen = keytree.KeyLen

// Key orders the events of a set: the 12-byte encoding of the event's hybrid
// logical time followed by its 32-byte ID. Keys compare bytewise, so the set
// orders events by time and breaks ties by ID; every replica therefore lists
// the same events in the same order.
type Key [KeyLen]byte

// MinKey is the smallest Key; no event has it.
var MinKey Key

// MaxKey is the largest Key; no event has it, so it serves as an open upper
// bound.
var MaxKey = func() Key {
	var k Key
	for i := range k {
		k[i] = 0xff
	}
	return k
}()

// MakeKey returns the key of an event with time t and ID id.
func MakeKey(t hlc.Timestamp, id events.ID) Key {
	var k Key
	t.AppendBinary(k[:0])
	copy(k[hlc.EncodedLen:], id[:])
	return k
}

// KeyOf returns the key of e.
func KeyOf(e events.Event) Key { return MakeKey(e.Time, e.ID) }

// TimeKey returns the smallest key at time t: every event at or after t has
// a key at or after it.
func TimeKey(t hlc.Timestamp) Key { return MakeKey(t, events.ID{}) }

// Time returns the timestamp part of k.
func (k Key) Time() hlc.Timestamp {
	t, _ := hlc.DecodeTimestamp(k[:hlc.EncodedLen])
	return t
}

// ID returns the event ID part of k.
func (k Key) ID() events.ID { return events.ID(k[hlc.EncodedLen:]) }

// Compare returns -1, 0 or +1 as k sorts before, with or after o.
func (k Key) Compare(o Key) int { return bytes.Compare(k[:], o[:]) }

// String returns the lowercase hex form of k, which sorts as k does.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey reads the hex form of a Key.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*KeyLen {
		return k, fmt.Errorf("%w: key %q has %d hex digits, want %d", ErrInvalidKey, s, len(s), 2*KeyLen)
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("%w: key %q: %v", ErrInvalidKey, s, err)
	}
	return k, nil
}

// IsZero reports whether k is the zero Key, which no event has.
func (k Key) IsZero() bool { return k == Key{} }
