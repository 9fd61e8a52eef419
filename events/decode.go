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
	// lazy leaves Attrs and Payload in the wire form, for Encoded.Event to
	// decode if it is asked for them (decodeBody).
	lazy bool
	// node and kind are the last Node and Kind decoded: a batch's events
	// mostly share them, and share the strings then.
	node, kind string
}

// span marks where a field's bytes lie in the input.
type span struct{ start, end int }

// fields locates the strings, Attrs and Payload of an event in its input.
type fields struct {
	node, kind, attrs, pay span
	nattrs                 int
}

// decodeEvent reads the wire form of one event from the front of b and
// returns it with the length of its encoding.
func (d *decoder) decodeEvent(b []byte) (Event, int, error) {
	e, f, n, err := d.scanEvent(b, true)
	if err != nil {
		return Event{}, 0, err
	}
	e.Node = reuseString(&d.node, b[f.node.start:f.node.end])
	e.Kind = reuseString(&d.kind, b[f.kind.start:f.kind.end])
	if !d.lazy {
		e.Attrs, e.Payload = body(b, f)
	}
	return e, n, nil
}

// reuseString returns s as a string: *last if it holds the same bytes,
// else a new one, which it keeps in *last.
func reuseString(last *string, s []byte) string {
	if string(s) != *last {
		*last = string(s)
	}
	return *last
}

// decodeBody decodes the Attrs and Payload of the wire form of an event
// that a lazy decoder read.
func decodeBody(wire []byte, l Limits) (map[string]string, []byte) {
	d := decoder{lim: l}
	_, f, _, err := d.scanEvent(wire, false)
	if err != nil {
		// The wire form was checked when it was decoded.
		panic(fmt.Sprintf("events: a checked wire form no longer decodes: %v", err))
	}
	return body(wire, f)
}

// body builds the Attrs and Payload that f locates in b. The attributes'
// strings are substrings of one copy of their bytes: one allocation
// instead of two per entry.
func body(b []byte, f fields) (map[string]string, []byte) {
	var attrs map[string]string
	if f.nattrs > 0 {
		all := string(b[f.attrs.start:f.attrs.end])
		sub := func(start, end int) string { return all[start-f.attrs.start : end-f.attrs.start] }
		attrs = make(map[string]string, f.nattrs)
		j := f.attrs.start
		for range f.nattrs {
			ks, ke, _ := str(b, j, majorText)
			vs, ve, _ := str(b, ke, majorText)
			attrs[sub(ks, ke)] = sub(vs, ve)
			j = ve
		}
	}
	var payload []byte
	if f.pay.end > f.pay.start {
		payload = bytes.Clone(b[f.pay.start:f.pay.end])
	}
	return attrs, payload
}

// scanEvent checks the wire form of one event at the front of b, allocating
// nothing but a signature, and returns its fixed-size fields, where the
// others lie and the length of the encoding. If checkID, it checks the ID
// against the content.
func (d *decoder) scanEvent(b []byte, checkID bool) (Event, fields, int, error) {
	var e Event
	nfields, i, err := head(b, 0, majorMap)
	if err != nil {
		return Event{}, fields{}, 0, fmt.Errorf("%w: event: %v", ErrInvalid, err)
	}
	if nfields > keySignature+1 {
		return Event{}, fields{}, 0, fmt.Errorf("%w: event has %d fields, at most %d", ErrInvalid, nfields, keySignature+1)
	}
	var (
		seen             uint
		f                fields
		idEnd            int
		contentEnd       = -1 // where the signature field starts, if there is one
		lastKey, lastErr = -1, error(nil)
	)
	for range nfields {
		if i >= len(b) {
			return Event{}, fields{}, 0, fmt.Errorf("%w: event: %v", ErrInvalid, errTruncated)
		}
		// Keys are unsigned integers below 24, so each is one byte equal to
		// its value; anything else is not a key of this format.
		key := int(b[i])
		if key >= len(fieldNames) {
			return Event{}, fields{}, 0, fmt.Errorf("%w: event: unknown field key 0x%02x", ErrInvalid, b[i])
		}
		if key <= lastKey {
			return Event{}, fields{}, 0, fmt.Errorf("%w: event: field %s out of order or repeated", ErrInvalid, fieldNames[key])
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
			f.node.start, f.node.end, lastErr = text(b, i)
			i = f.node.end
			switch {
			case lastErr != nil:
			case f.node.start == f.node.end:
				lastErr = errors.New("empty")
			case f.node.end-f.node.start > d.lim.MaxNodeBytes:
				return Event{}, fields{}, 0, fmt.Errorf("%w: Node is %d bytes, limit %d", ErrTooLarge, f.node.end-f.node.start, d.lim.MaxNodeBytes)
			}
		case keyCorrelation:
			i, lastErr = fixedBytes(b, i, e.Correlation[:])
		case keyParent:
			i, lastErr = fixedBytes(b, i, e.Parent[:])
		case keyKind:
			f.kind.start, f.kind.end, lastErr = text(b, i)
			i = f.kind.end
			switch {
			case lastErr != nil:
			case f.kind.start == f.kind.end:
				lastErr = errors.New("empty")
			case f.kind.end-f.kind.start > d.lim.MaxKindBytes:
				return Event{}, fields{}, 0, fmt.Errorf("%w: Kind is %d bytes, limit %d", ErrTooLarge, f.kind.end-f.kind.start, d.lim.MaxKindBytes)
			}
		case keyAttrs:
			f.nattrs, f.attrs, i, err = d.scanAttrs(b, i)
			if err != nil {
				return Event{}, fields{}, 0, err
			}
		case keyPayload:
			f.pay.start, f.pay.end, lastErr = str(b, i, majorBytes)
			i = f.pay.end
			if lastErr == nil && f.pay.start == f.pay.end {
				lastErr = errors.New("empty value must be left out")
			}
		case keySignature:
			var sig [SignatureLen]byte
			i, lastErr = fixedBytes(b, i, sig[:])
			e.Signature = sig[:]
		}
		if lastErr != nil {
			return Event{}, fields{}, 0, fmt.Errorf("%w: %s: %v", ErrInvalid, fieldNames[key], lastErr)
		}
	}
	if missing := requiredFields &^ seen; missing != 0 {
		for k := range fieldNames {
			if missing&(1<<k) != 0 {
				return Event{}, fields{}, 0, fmt.Errorf("%w: %s is missing", ErrInvalid, fieldNames[k])
			}
		}
	}
	if i > d.lim.MaxEventBytes {
		return Event{}, fields{}, 0, fmt.Errorf("%w: event is %d bytes, limit %d", ErrTooLarge, i, d.lim.MaxEventBytes)
	}

	if !checkID {
		return e, f, i, nil
	}
	// The content is the input without field 0 and the signature, behind
	// a map head that counts those fields fewer.
	contentFields := nfields - 1
	if contentEnd < 0 {
		contentEnd = i
	} else {
		contentFields--
	}
	d.scratch = append(d.scratch[:0], majorMap|byte(contentFields))
	d.scratch = append(d.scratch, b[idEnd:contentEnd]...)
	if sum := ID(sha256.Sum256(d.scratch)); sum != e.ID {
		return Event{}, fields{}, 0, idMismatch(e.ID, sum)
	}
	return e, f, i, nil
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
