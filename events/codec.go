package events

import (
	"crypto/sha256"
	"fmt"
	"sync"
)

// Seal validates e against DefaultLimits and returns it with its ID set. See
// Limits.Seal.
func Seal(e Event) (Event, error) { return DefaultLimits.Seal(e) }

// Verify reports whether e is valid under DefaultLimits and its ID matches
// its content. See Limits.Verify.
func Verify(e Event) error { return DefaultLimits.Verify(e) }

// Marshal returns the wire form of the sealed event e under DefaultLimits.
// See Limits.Marshal.
func Marshal(e Event) ([]byte, error) { return DefaultLimits.Marshal(e) }

// Unmarshal reads the wire form of one event under DefaultLimits. See
// Limits.Unmarshal.
func Unmarshal(b []byte) (Event, error) { return DefaultLimits.Unmarshal(b) }

// UnmarshalHeader reads the header of the wire form of one event under
// DefaultLimits. See Limits.UnmarshalHeader.
func UnmarshalHeader(b []byte) (Event, error) { return DefaultLimits.UnmarshalHeader(b) }

// Seal validates e and returns it with ID set to the SHA-256 of the
// canonical encoding of all its other fields. Equal content gives an equal
// ID whatever the order in which Attrs was filled.
//
// The returned event shares Attrs and Payload with e; changing them
// afterwards breaks the ID. An empty Attrs or Payload comes back nil, as
// Unmarshal returns it, since the encoding does not tell them apart.
func (l Limits) Seal(e Event) (Event, error) {
	l, err := l.resolve()
	if err != nil {
		return Event{}, err
	}
	id, err := l.contentID(e)
	if err != nil {
		return Event{}, err
	}
	return withID(e, id), nil
}

// withID returns e sealed with id: empty Attrs and Payload become nil, as
// Unmarshal returns them.
func withID(e Event, id ID) Event {
	e.ID = id
	if len(e.Attrs) == 0 {
		e.Attrs = nil
	}
	if len(e.Payload) == 0 {
		e.Payload = nil
	}
	return e
}

// Verify reports whether e is valid under l and its ID is the hash of its
// content. A mismatch matches ErrIDMismatch.
func (l Limits) Verify(e Event) error {
	l, err := l.resolve()
	if err != nil {
		return err
	}
	id, err := l.contentID(e)
	if err != nil {
		return err
	}
	if id != e.ID {
		return idMismatch(e.ID, id)
	}
	return nil
}

// Marshal returns the wire form of e, the form Unmarshal, batches and
// storage use: the canonical content with the ID added. It fails as Verify
// does, so that only sealed, valid events are ever written.
func (l Limits) Marshal(e Event) ([]byte, error) {
	l, err := l.resolve()
	if err != nil {
		return nil, err
	}
	var scratch [16]attr // up to 16 attributes are sorted on the stack
	n, attrs, err := l.check(e, scratch[:0])
	if err != nil {
		return nil, err
	}
	b, _, err := appendWire(make([]byte, 0, wireLen(e, n)), e, attrs, false)
	return b, err
}

// Unmarshal reads the wire form of one event, which must fill b. It accepts
// only the canonical form Marshal writes, checks the limits and the ID, and
// allocates nothing before all checks pass. The event does not share memory
// with b; empty Attrs and Payload are nil.
func (l Limits) Unmarshal(b []byte) (Event, error) {
	l, err := l.resolve()
	if err != nil {
		return Event{}, err
	}
	if len(b) > l.MaxEventBytes {
		return Event{}, fmt.Errorf("%w: event is %d bytes, limit %d", ErrTooLarge, len(b), l.MaxEventBytes)
	}
	bp := getBuffer(len(b))
	defer putBuffer(bp)
	d := decoder{lim: l, scratch: *bp}
	e, n, err := d.decodeEvent(b)
	*bp = d.scratch
	if err != nil {
		return Event{}, err
	}
	if n != len(b) {
		return Event{}, fmt.Errorf("%w: %d bytes after the event", ErrInvalid, len(b)-n)
	}
	return e, nil
}

// contentID validates e against resolved limits and hashes its content.
func (l Limits) contentID(e Event) (ID, error) {
	var scratch [16]attr // up to 16 attributes are sorted on the stack
	n, attrs, err := l.check(e, scratch[:0])
	if err != nil {
		return ID{}, err
	}
	bp := getBuffer(n)
	defer putBuffer(bp)
	*bp = appendContent((*bp)[:0], e, attrs)
	return sha256.Sum256(*bp), nil
}

func idMismatch(have, want ID) error {
	return fmt.Errorf("%w: ID is %s, content hashes to %s", ErrIDMismatch, have, want)
}

// buffers holds scratch buffers for encoding and hashing, so that Seal and
// the codecs do not allocate one per call.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBuffer bounds the buffers kept for reuse, so that one huge batch
// does not pin its memory for good.
const maxPooledBuffer = 4 << 20

// getBuffer returns an empty buffer of capacity at least n.
func getBuffer(n int) *[]byte {
	bp := buffers.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, 0, n)
	}
	*bp = (*bp)[:0]
	return bp
}

// putBuffer returns a buffer from getBuffer for reuse. The caller must store
// any grown slice back through bp first.
func putBuffer(bp *[]byte) {
	if cap(*bp) > maxPooledBuffer {
		return
	}
	buffers.Put(bp)
}

// UnmarshalHeader reads the header of the wire form of one event, which
// must fill b: every field but Attrs and Payload, which it leaves nil. It
// checks the encoding and the limits but not the ID, so it is for reading
// back what a store holds, whose events were checked when they were
// stored; it hashes nothing and allocates only Node and Kind.
func (l Limits) UnmarshalHeader(b []byte) (Event, error) {
	l, err := l.resolve()
	if err != nil {
		return Event{}, err
	}
	d := decoder{lim: l}
	e, f, n, err := d.scanEvent(b, false)
	if err != nil {
		return Event{}, err
	}
	if n != len(b) {
		return Event{}, fmt.Errorf("%w: %d bytes after the event", ErrInvalid, len(b)-n)
	}
	e.Node, e.Kind = string(b[f.node.start:f.node.end]), string(b[f.kind.start:f.kind.end])
	return e, nil
}
