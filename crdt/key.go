package crdt

import (
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
// the same events in the same order. Its methods are Time, ID, Compare,
// String, IsZero and Successor.
//
// It is the key type of the ordered index (and of the memory set), defined
// there so that the index, the memory set and the set share one type.
type Key = keytree.Key

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
