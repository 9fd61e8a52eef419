package events

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Encoded is an event with its wire form, the bytes Marshal returns for it.
// Only this package makes one, after checking the event against limits and
// its ID against its content, so a holder may store or send the wire form
// without encoding or hashing the event again.
//
// An Encoded made by Encode or SealEncoded shares Attrs and Payload with
// the event it was made from; changing them afterwards leaves the event and
// its wire form disagreeing. One a batch decoder made keeps them in the
// wire form until Event is called. The wire form must not be
// modified.
type Encoded struct {
	event  Event // without Attrs and Payload if lazy
	wire   []byte
	limits *Limits // resolved and interned: what the event was checked against
	lazy   bool
}

// Event returns the event. For an Encoded that DecodeBatchEncoded,
// AppendBatchEncoded or AppendBatchInPlace made, each call decodes Attrs
// and Payload anew; Header does not.
func (x Encoded) Event() Event {
	if !x.lazy {
		return x.event
	}
	e := x.event
	e.Attrs, e.Payload = decodeBody(x.wire, *x.limits)
	return e
}

// Header returns the event without its Attrs and Payload: what a store
// needs to file it, without decoding them.
func (x Encoded) Header() Event {
	e := x.event
	e.Attrs, e.Payload = nil, nil
	return e
}

// Wire returns the event's wire form. The caller must not modify it.
func (x Encoded) Wire() []byte { return x.wire }

// Clone returns x with a wire form of its own, for keeping an event that
// AppendBatchInPlace decoded.
func (x Encoded) Clone() Encoded {
	x.MoveTo(nil)
	return x
}

// MoveTo appends x's wire form to dst, points x's wire form at the
// appended bytes and returns the extended slice, so that a store that
// copies events into buffers of its own can hand them on from there.
func (x *Encoded) MoveTo(dst []byte) []byte {
	at := len(dst)
	dst = append(dst, x.wire...)
	x.wire = dst[at:len(dst):len(dst)]
	return dst
}

// CheckedUnder reports whether x was checked against l, so that checking
// it again under l would be redundant.
func (x Encoded) CheckedUnder(l Limits) bool {
	l, err := l.resolve()
	return err == nil && x.limits != nil && l == *x.limits
}

// interned holds one copy of each resolved Limits an Encoded was checked
// against, so that an Encoded, of which there are millions, carries a
// pointer rather than the whole struct. Applications use a handful of
// limits, so it stays small.
var interned sync.Map // Limits → *Limits

// lastInterned is the limits intern returned last: almost always the ones
// it is asked for next, found without boxing l to look it up in interned.
var lastInterned atomic.Pointer[Limits]

// intern returns the interned copy of resolved limits l.
func intern(l Limits) *Limits {
	if p := lastInterned.Load(); p != nil && *p == l {
		return p
	}
	p, ok := interned.Load(l)
	if !ok {
		// A copy made here, not &l: taking l's address would put every
		// call's l on the heap, an allocation per event sealed.
		c := l
		p, _ = interned.LoadOrStore(l, &c)
	}
	lastInterned.Store(p.(*Limits))
	return p.(*Limits)
}

// Encode checks e as Marshal does and returns it with its wire form.
func (l Limits) Encode(e Event) (Encoded, error) {
	l, err := l.resolve()
	if err != nil {
		return Encoded{}, err
	}
	wire, err := l.Marshal(e)
	if err != nil {
		return Encoded{}, err
	}
	return Encoded{e, wire, intern(l), false}, nil
}

// SealEncoded seals e as Seal does and returns it with its wire form: one
// encoding and one hash, where Seal then Encode take two of each.
func (l Limits) SealEncoded(e Event) (Encoded, error) {
	_, x, err := l.AppendSealEncoded(nil, e)
	return x, err
}

// AppendSealEncoded is SealEncoded with the wire form appended to dst: it
// returns the extended slice, and the event with the appended bytes as its
// wire form. A caller that hands its events to a store that keeps none of
// their memory (crdt.Set.AddEncoded) can seal them all into one buffer.
func (l Limits) AppendSealEncoded(dst []byte, e Event) ([]byte, Encoded, error) {
	l, err := l.resolve()
	if err != nil {
		return dst, Encoded{}, err
	}
	var scratch [16]attr // up to 16 attributes are sorted on the stack
	n, attrs, err := l.check(e, scratch[:0])
	if err != nil {
		return dst, Encoded{}, err
	}
	at := len(dst)
	dst, id, err := appendWire(slices.Grow(dst, wireLen(e, n)), e, attrs, true)
	if err != nil {
		return dst, Encoded{}, err
	}
	return dst, Encoded{withID(e, id), dst[at:len(dst):len(dst)], intern(l), false}, nil
}
