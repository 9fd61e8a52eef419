package hlc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// EncodedLen is the length of a Timestamp's binary encoding.
const EncodedLen = 12

// ErrInvalidTimestamp reports text or bytes that do not encode a Timestamp.
var ErrInvalidTimestamp = errors.New("hlc: invalid timestamp")

// Timestamp is a hybrid logical time: the wall part is unix nanoseconds, the
// logical part orders events that share a wall part. The zero Timestamp is
// before every timestamp a Clock issues.
type Timestamp struct {
	Wall    int64  // unix nanoseconds
	Logical uint32 // counter within one Wall value
}

// Compare returns -1 if t is before u, 0 if they are equal and +1 if t is
// after u.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Wall < u.Wall:
		return -1
	case t.Wall > u.Wall:
		return 1
	case t.Logical < u.Logical:
		return -1
	case t.Logical > u.Logical:
		return 1
	}
	return 0
}

// Less reports whether t is before u.
func (t Timestamp) Less(u Timestamp) bool { return t.Compare(u) < 0 }

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// String formats t as "<wall>.<logical>", both decimal. Parse is its inverse.
func (t Timestamp) String() string {
	b := make([]byte, 0, 32)
	b = strconv.AppendInt(b, t.Wall, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(t.Logical), 10)
	return string(b)
}

// Parse reads the form String writes.
func Parse(s string) (Timestamp, error) {
	wall, logical, ok := strings.Cut(s, ".")
	if !ok {
		return Timestamp{}, fmt.Errorf("%w: %q has no '.'", ErrInvalidTimestamp, s)
	}
	w, err := strconv.ParseInt(wall, 10, 64)
	if err != nil {
		return Timestamp{}, fmt.Errorf("%w: wall part of %q: %v", ErrInvalidTimestamp, s, err)
	}
	// ParseUint accepts a leading '+'; String never writes one.
	if strings.HasPrefix(logical, "+") {
		return Timestamp{}, fmt.Errorf("%w: logical part of %q has a sign", ErrInvalidTimestamp, s)
	}
	l, err := strconv.ParseUint(logical, 10, 32)
	if err != nil {
		return Timestamp{}, fmt.Errorf("%w: logical part of %q: %v", ErrInvalidTimestamp, s, err)
	}
	return Timestamp{Wall: w, Logical: uint32(l)}, nil
}

// AppendBinary appends the 12-byte big-endian encoding of t to b. The sign
// bit of Wall is flipped so that bytes.Compare on two encodings agrees with
// Compare on the timestamps, negative wall times included.
func (t Timestamp) AppendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Wall)^signBit)
	return binary.BigEndian.AppendUint32(b, t.Logical)
}

// DecodeTimestamp reads the encoding AppendBinary writes from the first
// EncodedLen bytes of b.
func DecodeTimestamp(b []byte) (Timestamp, error) {
	if len(b) < EncodedLen {
		return Timestamp{}, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidTimestamp, len(b), EncodedLen)
	}
	return Timestamp{
		Wall:    int64(binary.BigEndian.Uint64(b) ^ signBit),
		Logical: binary.BigEndian.Uint32(b[8:]),
	}, nil
}

const signBit = 1 << 63
