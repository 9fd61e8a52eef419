package events

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
	"strings"
)

// The canonical encoding of an event's content is a CBOR map with small
// integer keys, in RFC 8949 core deterministic form: shortest heads,
// definite lengths, map keys sorted by their encoded bytes. Integer keys
// keep the encoding small, and optional fields are left out when zero so
// that a field added later, left zero, does not change the ID of an event
// written before it existed. It is exactly what fxamacker/cbor's
// CoreDetEncOptions produce for this struct (canonical_test.go checks it):
//
//	struct {
//		Wall        int64             `cbor:"1,keyasint"`
//		Logical     uint32            `cbor:"2,keyasint,omitzero"`
//		Node        string            `cbor:"3,keyasint"`
//		Correlation TraceID           `cbor:"4,keyasint,omitzero"`
//		Parent      ID                `cbor:"5,keyasint,omitzero"`
//		Kind        string            `cbor:"6,keyasint"`
//		Attrs       map[string]string `cbor:"7,keyasint,omitempty"`
//		Payload     []byte            `cbor:"8,keyasint,omitempty"`
//	}
//
// The wire form of an event is the same map with the ID added under key 0,
// which sorts first, so the content is the wire form minus that field.
//
// The encoder is written by hand: fxamacker's sorts map keys through
// reflection and took 1.1 µs and 2 allocations for a typical event, against
// 0.3 µs and none here (BenchmarkReference), leaving the rest of Seal's
// budget to SHA-256. decode.go explains the decoder.
const (
	keyID = iota
	keyWall
	keyLogical
	keyNode
	keyCorrelation
	keyParent
	keyKind
	keyAttrs
	keyPayload
	keySignature // wire form only: not content
)

// CBOR major types, in the high three bits of a data item's first byte.
const (
	majorUint  byte = 0 << 5
	majorNeg   byte = 1 << 5
	majorBytes byte = 2 << 5
	majorText  byte = 3 << 5
	majorMap   byte = 5 << 5
)

// wirePrefixLen is the length of the wire form's first bytes up to the end
// of the ID: the map head, key 0, a two-byte byte-string head and the ID.
// The wire form is wirePrefixLen-1 bytes longer than the content, whose map
// head it replaces.
const wirePrefixLen = 1 + 1 + 2 + len(ID{})

// signatureFieldLen is the length of the Signature field in the wire form:
// its key, a two-byte byte-string head and the signature.
const signatureFieldLen = 1 + 2 + SignatureLen

// wireLen returns the length of e's wire form, given the length n of its
// content.
func wireLen(e Event, n int) int {
	n += wirePrefixLen - 1
	if len(e.Signature) > 0 {
		n += signatureFieldLen
	}
	return n
}

// minEventLen is the length of the shortest wire form of an event: ID, a
// wall time below 24, and a one-byte Node and Kind.
const minEventLen = wirePrefixLen + 2 + 3 + 3

// appendHead appends the head of a data item: its major type and argument,
// in the shortest form, as core deterministic encoding requires.
func appendHead(b []byte, major byte, arg uint64) []byte {
	switch {
	case arg < 24:
		return append(b, major|byte(arg))
	case arg <= math.MaxUint8:
		return append(b, major|24, byte(arg))
	case arg <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, major|25), uint16(arg))
	case arg <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, major|26), uint32(arg))
	}
	return binary.BigEndian.AppendUint64(append(b, major|27), arg)
}

// headLen returns the length of the head appendHead writes for arg.
func headLen(arg uint64) int {
	switch {
	case arg < 24:
		return 1
	case arg <= math.MaxUint8:
		return 2
	case arg <= math.MaxUint16:
		return 3
	case arg <= math.MaxUint32:
		return 5
	}
	return 9
}

// textLen returns the encoded length of a text or byte string of len(s)
// bytes.
func textLen(s string) int { return headLen(uint64(len(s))) + len(s) }

// appendInt appends a signed integer: major type 0 for v >= 0, otherwise
// major type 1 with argument -1-v.
func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendHead(b, majorUint, uint64(v))
	}
	return appendHead(b, majorNeg, ^uint64(v))
}

func intLen(v int64) int {
	if v >= 0 {
		return headLen(uint64(v))
	}
	return headLen(^uint64(v))
}

// contentFields returns the number of fields in e's content map.
func contentFields(e Event) int {
	n := 3 // Wall, Node, Kind
	if e.Time.Logical != 0 {
		n++
	}
	if !e.Correlation.IsZero() {
		n++
	}
	if !e.Parent.IsZero() {
		n++
	}
	if len(e.Attrs) > 0 {
		n++
	}
	if len(e.Payload) > 0 {
		n++
	}
	return n
}

// contentLenFixed returns the length of e's content encoding without the
// entries of Attrs (but with the Attrs map's key and head).
func contentLenFixed(e Event) int {
	n := 1 // map head: at most 8 fields
	n += 1 + intLen(e.Time.Wall)
	if e.Time.Logical != 0 {
		n += 1 + headLen(uint64(e.Time.Logical))
	}
	n += 1 + textLen(e.Node)
	if !e.Correlation.IsZero() {
		n += 1 + 1 + len(e.Correlation)
	}
	if !e.Parent.IsZero() {
		n += 1 + 2 + len(e.Parent)
	}
	n += 1 + textLen(e.Kind)
	if len(e.Attrs) > 0 {
		n += 1 + headLen(uint64(len(e.Attrs)))
	}
	if len(e.Payload) > 0 {
		n += 1 + headLen(uint64(len(e.Payload))) + len(e.Payload)
	}
	return n
}

// compareKeys orders text-string map keys as core deterministic encoding
// does, by their encoded bytes. A longer string has a greater head, so that
// order is shorter first, then bytewise.
func compareKeys(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// attr is an entry of Event.Attrs.
type attr struct{ k, v string }

// sortAttrs puts attrs in canonical order, by key.
func sortAttrs(attrs []attr) {
	slices.SortFunc(attrs, func(a, b attr) int { return compareKeys(a.k, b.k) })
}

// appendContent appends the canonical encoding of e's content. attrs must
// be the entries of e.Attrs in canonical order.
func appendContent(b []byte, e Event, attrs []attr) []byte {
	b = append(b, majorMap|byte(contentFields(e)))
	b = append(b, keyWall)
	b = appendInt(b, e.Time.Wall)
	if e.Time.Logical != 0 {
		b = append(b, keyLogical)
		b = appendHead(b, majorUint, uint64(e.Time.Logical))
	}
	b = append(b, keyNode)
	b = appendHead(b, majorText, uint64(len(e.Node)))
	b = append(b, e.Node...)
	if !e.Correlation.IsZero() {
		b = append(b, keyCorrelation, majorBytes|byte(len(e.Correlation)))
		b = append(b, e.Correlation[:]...)
	}
	if !e.Parent.IsZero() {
		b = append(b, keyParent, majorBytes|24, byte(len(e.Parent)))
		b = append(b, e.Parent[:]...)
	}
	b = append(b, keyKind)
	b = appendHead(b, majorText, uint64(len(e.Kind)))
	b = append(b, e.Kind...)
	if len(attrs) > 0 {
		b = append(b, keyAttrs)
		b = appendHead(b, majorMap, uint64(len(attrs)))
		for _, a := range attrs {
			b = appendHead(b, majorText, uint64(len(a.k)))
			b = append(b, a.k...)
			b = appendHead(b, majorText, uint64(len(a.v)))
			b = append(b, a.v...)
		}
	}
	if len(e.Payload) > 0 {
		b = append(b, keyPayload)
		b = appendHead(b, majorBytes, uint64(len(e.Payload)))
		b = append(b, e.Payload...)
	}
	return b
}

// appendWire appends the wire form of e. If seal, the form carries the ID
// e's content hashes to, whatever e.ID holds; otherwise it reports
// ErrIDMismatch if e.ID is not that hash. It returns the ID it wrote. attrs
// must be the entries of e.Attrs in canonical order.
//
// It writes the content first, wirePrefixLen-1 bytes further on, hashes it
// in place, then writes the prefix over the content's map head, so that the
// content is encoded once and never copied.
func appendWire(b []byte, e Event, attrs []attr, seal bool) ([]byte, ID, error) {
	start := len(b)
	b = append(b, make([]byte, wirePrefixLen-1)...)
	b = appendContent(b, e, attrs)
	content := b[start+wirePrefixLen-1:]
	sum := ID(sha256.Sum256(content))
	if seal {
		e.ID = sum
	} else if sum != e.ID {
		return b[:start], ID{}, idMismatch(e.ID, sum)
	}
	fields := content[0]&^majorMap + 1
	if len(e.Signature) > 0 {
		fields++
		b = append(b, keySignature, majorBytes|24, byte(len(e.Signature)))
		b = append(b, e.Signature...)
	}
	p := b[start : start+wirePrefixLen]
	p[0] = majorMap | fields
	p[1] = keyID
	p[2] = majorBytes | 24
	p[3] = byte(len(e.ID))
	copy(p[4:], e.ID[:])
	return b, e.ID, nil
}
