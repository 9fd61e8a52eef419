package events

import (
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
	_, c := x.AppendTo(nil)
	return c
}

// AppendTo appends x's wire form to dst and returns the extended slice and
// x with its wire form in the appended bytes, so that a store that copies
// events into buffers of its own can hand them on from there.
func (x Encoded) AppendTo(dst []byte) ([]byte, Encoded) {
	at := len(dst)
	dst = append(dst, x.wire...)
	x.wire = dst[at:len(dst):len(dst)]
	return dst, x
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
		p, _ = interned.LoadOrStore(l, &l)
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
	l, err := l.resolve()
	if err != nil {
		return Encoded{}, err
	}
	var scratch [16]attr // up to 16 attributes are sorted on the stack
	n, attrs, err := l.check(e, scratch[:0])
	if err != nil {
		return Encoded{}, err
	}
	wire, id, err := appendWire(make([]byte, 0, wireLen(e, n)), e, attrs, true)
	if err != nil {
		return Encoded{}, err
	}
	return Encoded{withID(e, id), wire, intern(l), false}, nil
}
