package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// The decoder reads events from the network and from storage. It accepts
// exactly the canonical wire form and nothing else: any input it accepts is
// what fxamacker/cbor decodes with strict options and re-encodes, with
// CoreDetEncOptions, to the same bytes (fuzz_test.go checks both ways). One
// event thus has one encoding, and the content hash is taken over the input
// bytes themselves instead of a re-encoding.
//
// It is written by hand for speed: the reflective decoder alone took 2.1 µs
// and 21 allocations for a typical event, more than the whole budget for
// decoding and verifying one. It makes two passes: the first checks
// structure, limits, UTF-8 and the ID without allocating, so hostile input
// costs no memory; the second builds the event with a handful of
// allocations.

var (
	errTruncated  = errors.New("truncated")
	errIndefinite = errors.New("indefinite length")
	errHead       = errors.New("reserved additional information")
	errNotShort   = errors.New("argument not in shortest form")
)

// fieldNames names the fields of the encoding in error messages.
var fieldNames = [...]string{
	keyID:          "ID",
	keyWall:        "Time.Wall",
	keyLogical:     "Time.Logical",
	keyNode:        "Node",
	keyCorrelation: "Correlation",
	keyParent:      "Parent",
	keyKind:        "Kind",
	keyAttrs:       "Attrs",
	keyPayload:     "Payload",
	keySignature:   "Signature",
}

// requiredFields has bit k set for each key k the wire form must hold.
const requiredFields = 1<<keyID | 1<<keyWall | 1<<keyNode | 1<<keyKind

// head reads the head of a data item of the given major type at b[i:] and
// returns its argument and the offset after the head. It rejects heads not
// in shortest form and indefinite lengths.
func head(b []byte, i int, major byte) (uint64, int, error) {
	if i >= len(b) {
		return 0, i, errTruncated
	}
	if b[i]&0xe0 != major {
		return 0, i, fmt.Errorf("major type %d, want %d", b[i]>>5, major>>5)
	}
	info := b[i] & 0x1f
	i++
	var arg, min uint64
	switch info {
	case 24:
		if len(b)-i < 1 {
			return 0, i, errTruncated
		}
		arg, min = uint64(b[i]), 24
		i++
	case 25:
		if len(b)-i < 2 {
			return 0, i, errTruncated
		}
		arg, min = uint64(binary.BigEndian.Uint16(b[i:])), math.MaxUint8+1
		i += 2
	case 26:
		if len(b)-i < 4 {
			return 0, i, errTruncated
		}
		arg, min = uint64(binary.BigEndian.Uint32(b[i:])), math.MaxUint16+1
		i += 4
	case 27:
		if len(b)-i < 8 {
			return 0, i, errTruncated
		}
		arg, min = binary.BigEndian.Uint64(b[i:]), math.MaxUint32+1
		i += 8
	case 28, 29, 30:
		return 0, i, errHead
	case 31:
		return 0, i, errIndefinite
	default:
		return uint64(info), i, nil
	}
	if arg < min {
		return 0, i, errNotShort
	}
	return arg, i, nil
}

// str reads a text or byte string at b[i:] and returns the offsets of its
// bytes.
func str(b []byte, i int, major byte) (start, end int, err error) {
	n, i, err := head(b, i, major)
	if err != nil {
		return 0, 0, err
	}
	if n > uint64(len(b)-i) {
		return 0, 0, errTruncated
	}
	return i, i + int(n), nil
}

// text reads a text string at b[i:], which must be valid UTF-8.
func text(b []byte, i int) (start, end int, err error) {
	start, end, err = str(b, i, majorText)
	if err == nil && !utf8.Valid(b[start:end]) {
		err = errors.New("not valid UTF-8")
	}
	return start, end, err
}

// fixedBytes reads a byte string of exactly len(dst) bytes at b[i:] into
// dst. A zero value is refused: the encoding leaves zero IDs out.
func fixedBytes(b []byte, i int, dst []byte) (int, error) {
	start, end, err := str(b, i, majorBytes)
	if err != nil {
		return 0, err
	}
	if end-start != len(dst) {
		return 0, fmt.Errorf("%d bytes, want %d", end-start, len(dst))
	}
	copy(dst, b[start:end])
	for _, c := range dst {
		if c != 0 {
			return end, nil
		}
	}
	return 0, errors.New("zero value must be left out")
}

// integer reads a signed 64-bit integer at b[i:].
func integer(b []byte, i int) (int64, int, error) {
	if i >= len(b) {
		return 0, i, errTruncated
	}
	major := b[i] & 0xe0
	if major != majorUint && major != majorNeg {
		return 0, i, fmt.Errorf("major type %d, want an integer", major>>5)
	}
	arg, i, err := head(b, i, major)
	if err != nil {
		return 0, i, err
	}
	if arg > math.MaxInt64 {
		return 0, i, errors.New("out of the int64 range")
	}
	if major == majorNeg {
		return -1 - int64(arg), i, nil
	}
	return int64(arg), i, nil
}

// decoder decodes events under resolved limits. It reuses scratch for
// hashing, so one decoder serves a whole batch.
type decoder struct {
	lim     Limits
	scratch []byte
}

// span marks where a field's bytes lie in the input.
type span struct{ start, end int }

// decodeEvent reads the wire form of one event from the front of b and
// returns it with the length of its encoding.
func (d *decoder) decodeEvent(b []byte) (Event, int, error) {
	var e Event
	fields, i, err := head(b, 0, majorMap)
	if err != nil {
		return Event{}, 0, fmt.Errorf("%w: event: %v", ErrInvalid, err)
	}
	if fields > keySignature+1 {
		return Event{}, 0, fmt.Errorf("%w: event has %d fields, at most %d", ErrInvalid, fields, keySignature+1)
	}
	var (
		seen             uint
		node, kind, pay  span
		attrs            span
		nattrs           int
		idEnd            int
		contentEnd       = -1 // where the signature field starts, if there is one
		lastKey, lastErr = -1, error(nil)
	)
	for range fields {
		if i >= len(b) {
			return Event{}, 0, fmt.Errorf("%w: event: %v", ErrInvalid, errTruncated)
		}
		// Keys are unsigned integers below 24, so each is one byte equal to
		// its value; anything else is not a key of this format.
		key := int(b[i])
		if key >= len(fieldNames) {
			return Event{}, 0, fmt.Errorf("%w: event: unknown field key 0x%02x", ErrInvalid, b[i])
		}
		if key <= lastKey {
			return Event{}, 0, fmt.Errorf("%w: event: field %s out of order or repeated", ErrInvalid, fieldNames[key])
		}
		lastKey = key
		seen |= 1 << key
		if key == keySignature {
			contentEnd = i
		}
		i++
		switch key {
		case keyID:
			// A zero ID cannot be a hash; refusing it here is as good as
			// letting the hash check fail.
			i, lastErr = fixedBytes(b, i, e.ID[:])
			idEnd = i
		case keyWall:
			e.Time.Wall, i, lastErr = integer(b, i)
		case keyLogical:
			var v uint64
			v, i, lastErr = head(b, i, majorUint)
			switch {
			case lastErr != nil:
			case v == 0:
				lastErr = errors.New("zero value must be left out")
			case v > math.MaxUint32:
				lastErr = errors.New("out of the uint32 range")
			}
			e.Time.Logical = uint32(v)
		case keyNode:
			node.start, node.end, lastErr = text(b, i)
			i = node.end
			if lastErr == nil && node.start == node.end {
				lastErr = errors.New("empty")
			}
		case keyCorrelation:
			i, lastErr = fixedBytes(b, i, e.Correlation[:])
		case keyParent:
			i, lastErr = fixedBytes(b, i, e.Parent[:])
		case keyKind:
			kind.start, kind.end, lastErr = text(b, i)
			i = kind.end
			switch {
			case lastErr != nil:
			case kind.start == kind.end:
				lastErr = errors.New("empty")
			case kind.end-kind.start > d.lim.MaxKindBytes:
				return Event{}, 0, fmt.Errorf("%w: Kind is %d bytes, limit %d", ErrTooLarge, kind.end-kind.start, d.lim.MaxKindBytes)
			}
		case keyAttrs:
			nattrs, attrs, i, err = d.scanAttrs(b, i)
			if err != nil {
				return Event{}, 0, err
			}
		case keyPayload:
			pay.start, pay.end, lastErr = str(b, i, majorBytes)
			i = pay.end
			if lastErr == nil && pay.start == pay.end {
				lastErr = errors.New("empty value must be left out")
			}
		case keySignature:
			var sig [SignatureLen]byte
			i, lastErr = fixedBytes(b, i, sig[:])
			e.Signature = sig[:]
		}
		if lastErr != nil {
			return Event{}, 0, fmt.Errorf("%w: %s: %v", ErrInvalid, fieldNames[key], lastErr)
		}
	}
	if missing := requiredFields &^ seen; missing != 0 {
		for k := range fieldNames {
			if missing&(1<<k) != 0 {
				return Event{}, 0, fmt.Errorf("%w: %s is missing", ErrInvalid, fieldNames[k])
			}
		}
	}
	if i > d.lim.MaxEventBytes {
		return Event{}, 0, fmt.Errorf("%w: event is %d bytes, limit %d", ErrTooLarge, i, d.lim.MaxEventBytes)
	}

	// The content is the input without field 0 and the signature, behind
	// a map head that counts those fields fewer.
	contentFields := fields - 1
	if contentEnd < 0 {
		contentEnd = i
	} else {
		contentFields--
	}
	d.scratch = append(d.scratch[:0], majorMap|byte(contentFields))
	d.scratch = append(d.scratch, b[idEnd:contentEnd]...)
	if sum := ID(sha256.Sum256(d.scratch)); sum != e.ID {
		return Event{}, 0, idMismatch(e.ID, sum)
	}

	// Every string of the event is a substring of one copy of the input
	// from Node to the last attribute: one allocation instead of one per
	// string. The strings together hold most of those bytes anyway.
	last := kind.end
	if nattrs > 0 {
		last = attrs.end
	}
	all := string(b[node.start:last])
	sub := func(start, end int) string { return all[start-node.start : end-node.start] }
	e.Node = sub(node.start, node.end)
	e.Kind = sub(kind.start, kind.end)
	if nattrs > 0 {
		e.Attrs = make(map[string]string, nattrs)
		j := attrs.start
		for range nattrs {
			ks, ke, _ := str(b, j, majorText)
			vs, ve, _ := str(b, ke, majorText)
			e.Attrs[sub(ks, ke)] = sub(vs, ve)
			j = ve
		}
	}
	if pay.end > pay.start {
		e.Payload = bytes.Clone(b[pay.start:pay.end])
	}
	return e, i, nil
}

// scanAttrs checks the Attrs map at b[i:] and returns its size, the span of
// its entries and the offset after it.
func (d *decoder) scanAttrs(b []byte, i int) (int, span, int, error) {
	n, i, err := head(b, i, majorMap)
	switch {
	case err != nil:
		return 0, span{}, 0, fmt.Errorf("%w: Attrs: %v", ErrInvalid, err)
	case n == 0:
		return 0, span{}, 0, fmt.Errorf("%w: Attrs: empty value must be left out", ErrInvalid)
	case n > uint64(d.lim.MaxAttrs):
		return 0, span{}, 0, fmt.Errorf("%w: Attrs has %d entries, limit %d", ErrTooLarge, n, d.lim.MaxAttrs)
	}
	s := span{start: i}
	var prev []byte // the previous key's encoding, head included
	for range n {
		ks, ke, err := text(b, i)
		if err != nil {
			return 0, span{}, 0, fmt.Errorf("%w: Attrs key: %v", ErrInvalid, err)
		}
		if ke-ks > d.lim.MaxAttrKeyBytes {
			return 0, span{}, 0, fmt.Errorf("%w: Attrs key %s is %d bytes, limit %d", ErrTooLarge, abbrev(string(b[ks:ke])), ke-ks, d.lim.MaxAttrKeyBytes)
		}
		// Keys must be sorted by their encoded bytes and unique, or the
		// input is not canonical.
		if prev != nil && bytes.Compare(prev, b[i:ke]) >= 0 {
			return 0, span{}, 0, fmt.Errorf("%w: Attrs key %s out of order or repeated", ErrInvalid, abbrev(string(b[ks:ke])))
		}
		prev = b[i:ke]
		vs, ve, err := text(b, ke)
		if err != nil {
			return 0, span{}, 0, fmt.Errorf("%w: Attrs[%s]: %v", ErrInvalid, abbrev(string(b[ks:ke])), err)
		}
		if ve-vs > d.lim.MaxAttrValueBytes {
			return 0, span{}, 0, fmt.Errorf("%w: Attrs[%s] is %d bytes, limit %d", ErrTooLarge, abbrev(string(b[ks:ke])), ve-vs, d.lim.MaxAttrValueBytes)
		}
		i = ve
	}
	s.end = i
	return int(n), s, i, nil
}
