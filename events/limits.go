package events

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits bounds what one event and one batch may hold, so that a peer cannot
// make another allocate without bound and a buggy caller learns of an
// oversized event when it seals it rather than when a peer rejects it.
// Both ends of a connection need limits at least as large as what the other
// sends.
//
// A zero field means the default shown in its comment; a negative field is
// an error. Methods take Limits by value and never change it.
type Limits struct {
	// MaxEventBytes bounds the wire encoding of one event (the length of
	// Marshal's output), in bytes. Default 64 KiB.
	MaxEventBytes int

	// MaxNodeBytes bounds Event.Node, in bytes. It names the origin, a
	// peer ID of about 52 characters, and is what per-origin tables are
	// keyed by. Default 128.
	MaxNodeBytes int

	// MaxKindBytes bounds Event.Kind, in bytes. Default 256.
	MaxKindBytes int

	// MaxAttrs bounds the number of entries in Event.Attrs. Default 64.
	MaxAttrs int

	// MaxAttrKeyBytes bounds each key of Event.Attrs, in bytes. Default 128.
	MaxAttrKeyBytes int

	// MaxAttrValueBytes bounds each value of Event.Attrs, in bytes.
	// Default 4 KiB.
	MaxAttrValueBytes int

	// MaxBatchEvents bounds the number of events in one batch. Default 4096.
	MaxBatchEvents int

	// MaxBatchBytes bounds the encoded events of one batch before
	// compression, in bytes; the header adds at most 22 bytes, and
	// compression is kept only if it makes the batch smaller. It also
	// bounds the memory decompression may use. Default 1 MiB.
	MaxBatchBytes int
}

// DefaultLimits are the limits of the package-level functions Seal, Verify,
// Marshal, Unmarshal, EncodeBatch and DecodeBatch. Change it, if at all,
// before any of them runs; to use other limits in one place, call the
// methods of a Limits value instead.
var DefaultLimits = Limits{
	MaxEventBytes:     64 << 10,
	MaxNodeBytes:      128,
	MaxKindBytes:      256,
	MaxAttrs:          64,
	MaxAttrKeyBytes:   128,
	MaxAttrValueBytes: 4 << 10,
	MaxBatchEvents:    4096,
	MaxBatchBytes:     1 << 20,
}

// builtinLimits are the values zero fields of a Limits stand for: those
// DefaultLimits starts with, whatever it is changed to.
var builtinLimits = DefaultLimits

// resolve returns l with zero fields replaced by their defaults, or an error
// naming every negative field.
func (l Limits) resolve() (Limits, error) {
	// Almost every call has limits that are all zero (the defaults) or
	// all set; they cost a comparison, where resolving each field showed
	// in the replication profile, called a few times an event.
	if l == (Limits{}) {
		return builtinLimits, nil
	}
	if l.MaxEventBytes > 0 && l.MaxNodeBytes > 0 && l.MaxKindBytes > 0 && l.MaxAttrs > 0 && l.MaxAttrKeyBytes > 0 &&
		l.MaxAttrValueBytes > 0 && l.MaxBatchEvents > 0 && l.MaxBatchBytes > 0 {
		return l, nil
	}
	var bad []string
	fill := func(v *int, def int, name string) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			bad = append(bad, fmt.Sprintf("%s is %d", name, *v))
		}
	}
	d := builtinLimits
	fill(&l.MaxEventBytes, d.MaxEventBytes, "MaxEventBytes")
	fill(&l.MaxNodeBytes, d.MaxNodeBytes, "MaxNodeBytes")
	fill(&l.MaxKindBytes, d.MaxKindBytes, "MaxKindBytes")
	fill(&l.MaxAttrs, d.MaxAttrs, "MaxAttrs")
	fill(&l.MaxAttrKeyBytes, d.MaxAttrKeyBytes, "MaxAttrKeyBytes")
	fill(&l.MaxAttrValueBytes, d.MaxAttrValueBytes, "MaxAttrValueBytes")
	fill(&l.MaxBatchEvents, d.MaxBatchEvents, "MaxBatchEvents")
	fill(&l.MaxBatchBytes, d.MaxBatchBytes, "MaxBatchBytes")
	if bad != nil {
		return Limits{}, fmt.Errorf("%w: negative limits: %s", ErrInvalid, strings.Join(bad, ", "))
	}
	return l, nil
}

// Resolve returns l with each zero field at its default, or an error
// naming every negative field: the limits l stands for.
func (l Limits) Resolve() (Limits, error) { return l.resolve() }

// Validate reports whether e is an event these limits accept: Node and Kind
// are non-empty, every string is valid UTF-8 (the encoding stores them as
// CBOR text strings, which must be), and no field or the whole encoding is
// beyond a limit. It does not look at e.ID; Verify does.
func (l Limits) Validate(e Event) error {
	l, err := l.resolve()
	if err != nil {
		return err
	}
	var scratch [16]attr
	_, _, err = l.check(e, scratch[:0])
	return err
}

// check validates e against resolved limits and returns the length of its
// canonical content encoding, which it computes on the way rather than by
// encoding, so that an oversized event is rejected before it is copied, and
// its attributes in canonical order, appended to dst.
func (l Limits) check(e Event, dst []attr) (int, []attr, error) {
	if e.Node == "" {
		return 0, nil, fmt.Errorf("%w: Node is empty", ErrInvalid)
	}
	if len(e.Node) > l.MaxNodeBytes {
		return 0, nil, fmt.Errorf("%w: Node is %d bytes, limit %d", ErrTooLarge, len(e.Node), l.MaxNodeBytes)
	}
	if !utf8.ValidString(e.Node) {
		return 0, nil, fmt.Errorf("%w: Node is not valid UTF-8", ErrInvalid)
	}
	if e.Kind == "" {
		return 0, nil, fmt.Errorf("%w: Kind is empty", ErrInvalid)
	}
	if len(e.Kind) > l.MaxKindBytes {
		return 0, nil, fmt.Errorf("%w: Kind is %d bytes, limit %d", ErrTooLarge, len(e.Kind), l.MaxKindBytes)
	}
	if !utf8.ValidString(e.Kind) {
		return 0, nil, fmt.Errorf("%w: Kind is not valid UTF-8", ErrInvalid)
	}
	if len(e.Attrs) > l.MaxAttrs {
		return 0, nil, fmt.Errorf("%w: Attrs has %d entries, limit %d", ErrTooLarge, len(e.Attrs), l.MaxAttrs)
	}
	n := contentLenFixed(e)
	for k, v := range e.Attrs {
		if len(k) > l.MaxAttrKeyBytes {
			return 0, nil, fmt.Errorf("%w: Attrs key %s is %d bytes, limit %d", ErrTooLarge, abbrev(k), len(k), l.MaxAttrKeyBytes)
		}
		if !utf8.ValidString(k) {
			return 0, nil, fmt.Errorf("%w: Attrs key %s is not valid UTF-8", ErrInvalid, abbrev(k))
		}
		if len(v) > l.MaxAttrValueBytes {
			return 0, nil, fmt.Errorf("%w: Attrs[%s] is %d bytes, limit %d", ErrTooLarge, abbrev(k), len(v), l.MaxAttrValueBytes)
		}
		if !utf8.ValidString(v) {
			return 0, nil, fmt.Errorf("%w: Attrs[%s] is not valid UTF-8", ErrInvalid, abbrev(k))
		}
		n += textLen(k) + textLen(v)
		dst = append(dst, attr{k, v})
	}
	sortAttrs(dst)
	if len(e.Signature) != 0 && len(e.Signature) != SignatureLen {
		return 0, nil, fmt.Errorf("%w: Signature is %d bytes, want %d", ErrInvalid, len(e.Signature), SignatureLen)
	}
	if wire := wireLen(e, n); wire > l.MaxEventBytes {
		return 0, nil, fmt.Errorf("%w: event encodes to %d bytes, limit %d", ErrTooLarge, wire, l.MaxEventBytes)
	}
	return n, dst, nil
}

// abbrev quotes s for an error message, cut short so that a huge or hostile
// key cannot make the message huge.
func abbrev(s string) string {
	const max = 40
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", s[:max])
}
